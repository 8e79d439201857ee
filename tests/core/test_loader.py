"""Loading and validating single template documents: field paths, files, zstd, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from core.errors import TemplateValidationError
from core.loader import load_template_file, parse_template
from core.template import template_json_schema
from tests.core.conftest import template_doc, write_template


def errors_of(doc: object, source: str = "t.json") -> dict[str, str]:
    with pytest.raises(TemplateValidationError) as info:
        parse_template(doc, source)  # type: ignore[arg-type]  # deliberately wrong input
    return dict(info.value.errors)


def test_valid_document_gets_defaults() -> None:
    template = parse_template(template_doc("writer", tools=["text_reader"]), "mem")
    assert template.tools == ["text_reader"]
    assert template.model.provider == "local"
    assert template.extends is None


def test_bad_list_item_is_reported_with_its_index() -> None:
    errors = errors_of(template_doc("x", tools=["a", "b", 3]))
    assert list(errors) == ["tools[2]"]
    assert "string" in errors["tools[2]"]


def test_message_names_file_and_every_field() -> None:
    doc = template_doc("Bad Name", version="1.x", model={"name": ""}, colour="red")
    with pytest.raises(TemplateValidationError) as info:
        parse_template(doc, "templates/bad.json")
    message = str(info.value)
    assert message.startswith("templates/bad.json: ")
    for path in (
        "name: ",
        "version: '1.x' is not a valid PEP 440 version",
        "model.name: ",
        "colour: Extra inputs are not permitted",
    ):
        assert path in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["acme/summarizer", "a", "base_agent", "x-1"])
def test_accepts_names(name: str) -> None:
    assert parse_template(template_doc(name), "mem").name == name


@pytest.mark.parametrize("name", ["Upper", "a/b/c", "/lead", "with space", "", "é"])
def test_refuses_names(name: str) -> None:
    assert "name" in errors_of(template_doc(name))


def test_missing_required_fields() -> None:
    errors = errors_of({"description": "no name"})
    assert set(errors) == {"name", "version"}


def test_remove_only_on_removable_fields() -> None:
    errors = errors_of(template_doc("x", **{"$remove": {"version": ["1"]}}))
    assert "$remove" in errors


def test_document_must_be_an_object() -> None:
    assert errors_of(["not", "a", "template"]) == {"": "a template must be a JSON object, not list"}


def test_json_syntax_error_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "version": }')
    with pytest.raises(TemplateValidationError) as info:
        load_template_file(path)
    assert str(path) in str(info.value)
    assert "line 2 column" in str(info.value)


def test_zstd_file_loads_like_json(tmp_path: Path) -> None:
    path = write_template(tmp_path, template_doc("packed", capabilities=["a"]), zst=True)
    assert path.name == "packed.json.zst"
    assert load_template_file(path).capabilities == ["a"]


def test_corrupt_zstd_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json.zst"
    path.write_bytes(b"definitely not zstd")
    with pytest.raises(TemplateValidationError, match="invalid zstd data"):
        load_template_file(path)


def test_zstd_payload_is_validated_too(tmp_path: Path) -> None:
    path = tmp_path / "bad.json.zst"
    payload = json.dumps(template_doc("x", tools=[1])).encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(payload))
    with pytest.raises(TemplateValidationError, match=r"tools\[0\]"):
        load_template_file(path)


def test_wrong_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateValidationError, match=r"\.json or \.json\.zst"):
        load_template_file(tmp_path / "x.yaml")
    with pytest.raises(TemplateValidationError, match="cannot read file"):
        load_template_file(tmp_path / "missing.json")


def test_schema_comes_from_the_model() -> None:
    schema = template_json_schema()
    assert schema["additionalProperties"] is False
    assert {"name", "version"} <= set(schema["required"])
    assert "$remove" in schema["properties"]


def test_builtin_templates_are_valid_documents() -> None:
    from core.paths import builtin_templates_dir

    files = sorted(builtin_templates_dir().glob("*.json"))
    names = {load_template_file(p).name for p in files}
    assert {
        "base_agent",
        "documentaliste",
        "genie_logiciel",
        "hardware",
        "security_analyst",
    } <= names
