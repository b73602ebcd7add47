"""Language tags (BCP 47) as feeds write them, and how an output's `languages` match them."""

from __future__ import annotations

import re

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
#: the script a Chinese region writes, so "zh-Hant" finds CNA's "zh-TW"
_REGION_SCRIPT = {"tw": "hant", "hk": "hant", "mo": "hant",
                  "cn": "hans", "sg": "hans", "my": "hans"}


def language_tag(value: str | None) -> str:
    """A declared language in canonical case ("zh-tw" → "zh-TW", "zh_hant" → "zh-Hant");
    "" for anything that is not a language tag (feeds write "Chinese", "utf-8", ...)."""
    if not value:
        return ""
    candidate = value.strip().replace("_", "-")
    if not _TAG.match(candidate) or len(candidate) > 35:
        return ""
    parts = candidate.split("-")
    shaped = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            shaped.append(part.title())
        elif len(part) == 2 and part.isalpha():
            shaped.append(part.upper())
        else:
            shaped.append(part.lower())
    return "-".join(shaped)


def _forms(tag: str) -> set[str]:
    """The tag and, for a Chinese region, the script it implies: zh-TW → {zh-tw, zh-hant}."""
    lowered = tag.lower()
    forms = {lowered}
    parts = lowered.split("-")
    if parts[0] == "zh":
        for part in parts[1:]:
            if part in _REGION_SCRIPT:
                forms.add(f"zh-{_REGION_SCRIPT[part]}")
    return forms


def language_matches(language: str, wanted: str) -> bool:
    """BCP 47 prefix matching (RFC 4647 "basic filtering"), with a Chinese region read as
    its script too: "zh" and "zh-Hant" both find "zh-TW"; "zh-TW" does not find "zh-HK"."""
    if not language:
        return False
    want = wanted.lower()
    return any(form == want or form.startswith(want + "-") for form in _forms(language))
