"""CSS inlining for the composed variants: premailer, with what it redoes on every call done once.

premailer parses the stylesheet once (its own cache) but serializes every rule's properties again
on each call, and parses each floated image's style anew; an edition inlines the same stylesheet
into hundreds of variants. `Inliner` keeps those per stylesheet and per style, and gives the same
bytes premailer's own `transform()` gives (tests/test_compose_inline.py holds it to that).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import cssutils
import premailer
from lxml import etree

# premailer's options for every variant: nothing fetched, classes and !important kept.
OPTIONS: dict[str, Any] = {
    "allow_network": False,
    "disable_validation": True,
    "cssutils_logging_level": logging.CRITICAL,
    "remove_classes": False,
    "strip_important": False,
    "keep_style_tags": False,
}


class Inliner(premailer.Premailer):
    """One premailer for many documents, its rules kept per stylesheet."""

    def __init__(self) -> None:
        # Floated images are aligned here, from a cached parse of their style, not by premailer.
        super().__init__(**OPTIONS, align_floating_images=False)
        self._rules: dict[tuple[str, int, bool], tuple[list[Any], list[Any]]] = {}
        self._leftover: dict[int, tuple[list[Any], str]] = {}
        self._attributes: dict[str, list[tuple[str, str]]] = {}

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        """The rules and the leftovers (media queries) of a stylesheet, worked out once."""
        key = (css_body, ruleset_index, self.disable_validation)
        if key not in self._rules:
            self._rules[key] = super()._parse_style_rules(css_body, ruleset_index)
        rules, leftover = self._rules[key]
        return list(rules), leftover

    def _css_rules_to_string(self, rules: list[Any]) -> str:
        """The <style> block left for media queries: a stylesheet's leftovers (the list kept
        above, the very same object each time) give the same text."""
        found = self._leftover.get(id(rules))
        if found is None or found[0] is not rules:
            found = self._leftover[id(rules)] = (rules, super()._css_rules_to_string(rules))
        return found[1]

    def _style_to_basic_html_attributes(self, element: Any, style_content: str, force: bool = False) -> None:
        """The HTML attributes (align, bgcolor, width...) a style gives, worked out once per style:
        premailer's own, read off an element made for it."""
        found = self._attributes.get(style_content)
        if found is None:
            probe = etree.Element("probe")
            super()._style_to_basic_html_attributes(probe, style_content, force=True)
            found = self._attributes[style_content] = list(probe.attrib.items())
        for key, value in found:
            if force or key not in element.attrib:
                element.attrib[key] = value

    def inline(self, html: str) -> str:
        """`html` with its stylesheet's rules as style attributes, as premailer's `transform()`
        of the same string gives it."""
        stripped = html.strip()
        tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
        page = tree.getroot()
        # lxml adds a doctype where there was none: serialize the tree only where there was one.
        root = tree if stripped.startswith(tree.docinfo.doctype) else page
        self.transform(page)
        for image in page.xpath("//img[@style]"):
            align = _float(image.attrib["style"])
            if align in ("left", "right"):
                image.attrib["align"] = align
        return str(etree.tostring(root, method="html", pretty_print=False, encoding="utf-8").decode("utf-8"))


@lru_cache(maxsize=256)
def _float(style: str) -> str:
    """An inline style's float, parsed as premailer parses it; every image of a variant shares one."""
    return str(cssutils.parseStyle(style).float)
