// Copy buttons: <button data-copy-target="ID" hidden> copies the text of element ID.
// The buttons ship hidden so that visitors without JavaScript never see a button that does nothing.
(function () {
  "use strict";
  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    var status = button.parentNode.querySelector(".copy-status");
    if (!target) { return; }
    var text = target.textContent;
    var done = function () { if (status) { status.textContent = "Copied to the clipboard"; } };
    var fail = function () { if (status) { status.textContent = "Select the command and copy it"; } };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, fail);
    } else {
      fail();
    }
  }
  var buttons = document.querySelectorAll("button[data-copy-target]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
    buttons[i].addEventListener("click", function (event) { copy(event.currentTarget); });
  }
})();
