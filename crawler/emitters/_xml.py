"""Small helpers shared by the XML emitters."""

from __future__ import annotations

from lxml import etree

from crawler.normalize import xml_safe


def sub(parent: etree._Element, tag: str, text: str | None = None,
        **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: xml_safe(v) for k, v in attributes.items()})
    if text is not None:
        element.text = xml_safe(text)
    return element


def serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True))
