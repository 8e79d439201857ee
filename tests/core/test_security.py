"""The tool deny-list."""

from __future__ import annotations

from core.security import DENIED_TOOLS, denied_tools


def test_deny_list_covers_shell_network_and_filesystem() -> None:
    assert {"shell", "network", "filesystem"} <= DENIED_TOOLS


def test_families_case_and_order() -> None:
    tools = ["text_reader", "Shell", "filesystem.write", "shell", "network:any", "shell"]
    assert denied_tools(tools) == ["Shell", "filesystem.write", "shell", "network:any"]


def test_operator_allows_a_family_or_one_member() -> None:
    tools = ["shell:ls", "shell:rm", "network"]
    assert denied_tools(tools, {"shell"}) == ["network"]
    assert denied_tools(tools, {"shell:ls"}) == ["shell:rm", "network"]


def test_harmless_tools_pass() -> None:
    assert denied_tools(["regex_search", "luhn_check", "shellfish_db"]) == []
