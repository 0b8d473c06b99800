"""Prompt templates: the user turn's text rendered from ``content`` the way EasyR1 renders a ``.jinja`` prompt file,
and every problem with a template file reported as one error naming the file and the line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from deepmedix.errors import OptionError
from deepmedix.protocol import (
    BUILTIN_PLAIN_TEMPLATE,
    BUILTIN_REASONING_TEMPLATE,
    REASONING_SUFFIX,
    build_messages,
    build_user_text,
    load_prompt_template,
    user_prompt_template,
)

# A template in the released file's form: the content trimmed, a blank line, one paragraph, a final newline.
TEMPLATE = "{{ content | trim }}\n\nReason inside <think> </think>, cite boxes, answer in \\boxed{}.\n"


def _write(folder: Path, text: str | bytes, name: str = "prompt.jinja") -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_the_built_in_templates_have_the_released_form_and_keep_the_projects_wording() -> None:
    assert BUILTIN_REASONING_TEMPLATE.source == "{{ content | trim }}\n\n" + REASONING_SUFFIX
    assert BUILTIN_REASONING_TEMPLATE.render("Is there an effusion?") == f"Is there an effusion?\n\n{REASONING_SUFFIX}"
    assert BUILTIN_PLAIN_TEMPLATE.render("  Is there an effusion?\n") == "Is there an effusion?"
    assert build_user_text("Q?") == f"Q?\n\n{REASONING_SUFFIX}" and build_user_text("Q?", reasoning=False) == "Q?"
    assert BUILTIN_REASONING_TEMPLATE.sha256 == hashlib.sha256(BUILTIN_REASONING_TEMPLATE.source.encode()).hexdigest()


def test_a_template_file_renders_like_easyr1_and_is_named_by_file_and_hash(tmp_path: Path) -> None:
    path = _write(tmp_path, TEMPLATE)
    template = load_prompt_template(path)
    assert template is not None
    # The source is stripped (its final newline is not sent) and the content trimmed by the template's own filter.
    assert template.render("  Where is the lesion? \n") == (
        "Where is the lesion?\n\nReason inside <think> </think>, cite boxes, answer in \\boxed{}."
    )
    assert template.name == "prompt.jinja"
    assert template.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert template.record() == {"prompt_template": "prompt.jinja", "prompt_template_sha256": template.sha256}
    # It replaces only the text: images stay parts of their own, before it.
    messages = build_messages("Where is the lesion?", n_images=2, template=template)
    assert [p["type"] for p in messages[0]["content"]] == ["image", "image", "text"]
    assert messages[0]["content"][2]["text"] == template.render("Where is the lesion?")


def test_a_template_that_passes_content_through_untrimmed_gets_it_as_is(tmp_path: Path) -> None:
    template = load_prompt_template(_write(tmp_path, "[{{ content }}]\nAnswer briefly."))
    assert template is not None and template.render(" q ") == "[ q ]\nAnswer briefly."


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("\n\n{{ content | trim }}\n\n{{ content | }}\n", 5, "template syntax error"),  # lines of the file
        ("{{ content }}\n{% if content %}\nthink\n", 2, "needs to be closed is 'if'"),
        ("{{ content | trim }}\n\nAnswer for {{ patient }}.", 3, "undefined variable 'patient'"),
        ("{{ content.upper().nothing.more }}", 1, "UndefinedError"),
        ("{{ content }}{{ content.__class__.__mro__ }}", 1, "SecurityError"),  # sandboxed
    ],
)
def test_a_broken_template_is_one_error_naming_the_file_and_line(tmp_path: Path, text: str, line: int, says: str):
    path = _write(tmp_path, text)
    with pytest.raises(OptionError) as err:
        load_prompt_template(path)
    message = str(err.value)
    assert f"{path}, line {line}:" in message and says in message and "\n" not in message


def test_a_template_without_content_missing_or_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="never uses {{ content }}"):
        load_prompt_template(_write(tmp_path, "Think step by step."))
    with pytest.raises(OptionError, match=r"missing\.jinja: No such file"):
        load_prompt_template(tmp_path / "missing.jinja")
    with pytest.raises(OptionError, match=r"latin\.jinja, line 2: not UTF-8"):
        load_prompt_template(_write(tmp_path, b"{{ content }}\n\xe9t\xe9", "latin.jinja"))


def test_a_given_template_is_the_reasoning_prompt_only(tmp_path: Path) -> None:
    template = load_prompt_template(_write(tmp_path, TEMPLATE))
    assert user_prompt_template(True, template) is template
    assert user_prompt_template(True) is BUILTIN_REASONING_TEMPLATE
    assert user_prompt_template(False) is BUILTIN_PLAIN_TEMPLATE
    with pytest.raises(OptionError, match="asks without reasoning"):
        build_user_text("q?", reasoning=False, template=template)
