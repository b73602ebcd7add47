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


def serialize(root: etree._Element, stylesheet_url: str | None = None) -> bytes:
    """UTF-8 with the XML declaration; an XSL stylesheet's processing instruction right after
    it, for the browsers that still render a feed with one."""
    if stylesheet_url:
        href = stylesheet_url.replace("&", "&amp;").replace('"', "&quot;")
        root.addprevious(etree.ProcessingInstruction(
            "xml-stylesheet", f'type="text/xsl" href="{href}"'))
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8",
                                pretty_print=True))
