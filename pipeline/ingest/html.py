"""HTML adapter: saved listing pages (.html/.htm; a file or a folder, recursively), a record each.

Pages are parsed with selectolax (lexbor backend). Market layouts are data: ``pipeline/resources/
html_markets.yaml`` gives each market a ``detect`` selector and its field selectors; a **generic fallback**
reads any page (title from h1/<title>, body from the largest text block or the meta description, labelled
fields such as "Ships from:" from dl/table pairs and "Label: value" lines, breadcrumbs from elements whose
class contains "crumb") and also fills the fields a detected layout leaves empty.

HTML is decoded to text here (the only cleaning this stage does): entities decoded, whitespace collapsed
as a browser would, block elements become line breaks and paragraphs blank lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from pipeline.ingest.records import (
    Item,
    Provenance,
    RawRecord,
    SourceReader,
    list_files,
    looks_binary,
    normalise_currency,
    parse_price,
    stable_id,
)

ADAPTER = "html"
SUFFIXES: tuple[str, ...] = (".html", ".htm", ".xhtml")

#: blocks that end a paragraph (blank line) and blocks that end a line
_PARA = frozenset(
    [
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "pre",
        "table",
        "ul",
        "ol",
        "dl",
        "form",
        "figure",
        "main",
        "nav",
        "hr",
        "address",
        "details",
        "fieldset",
    ]
)
_LINE = frozenset(
    ["div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "option", "legend", "center", "body"]
)
_CELL = frozenset(("td", "th"))
_SKIP = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "head",
        "title",
        "iframe",
        "object",
        "embed",
        "canvas",
        "select",
    ]
)
#: page chrome the generic body never takes text from
_CHROME = frozenset(["nav", "header", "footer", "aside"])
#: elements whose own text competes for "largest text block"
_CONTAINERS = frozenset(
    ["div", "section", "article", "main", "td", "body", "blockquote", "center", "font", "form"]
)
_NOT_OWN_TEXT = _CONTAINERS | _SKIP | _CHROME | {"table", "dl"}
_WS = re.compile(r"\s+")
_BLANKS = re.compile(r"\n{3,}")
_LABEL_LINE = re.compile(r"^\s*([^\W\d][^:：\n]{0,40}?)\s*[:：]\s*(\S.{0,200}?)\s*$")
_CRUMB_SPLIT = re.compile(r"\s*(?:»|›|>|/|\||→|::)\s*")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_CRUMB_CSS = "nav[class*=crumb], ol[class*=crumb], ul[class*=crumb], div[class*=crumb], p[class*=crumb]"
_MAX_DETAILS = 50


# --- configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """A CSS selector and, optionally, the attribute to read instead of the text."""

    css: str
    attr: str | None = None
    split: str | None = None  # crumbs only: one element split on this separator


@dataclass(frozen=True)
class Layout:
    """One market's page layout (from ``html_markets.yaml``)."""

    name: str
    market: str
    detect: str
    fields: Mapping[str, Selector]
    crumbs: Selector | None = None
    pairs: tuple[str, ...] = ()


@dataclass(frozen=True)
class HtmlConfig:
    """The layouts, the label table (label text -> field) and the crumbs to drop."""

    layouts: tuple[Layout, ...]
    labels: Mapping[str, str]
    drop_crumbs: frozenset[str]


def _selector(spec: Any) -> Selector:
    if isinstance(spec, str):
        return Selector(spec)
    return Selector(spec["css"], spec.get("attr"), spec.get("split"))


@cache
def html_config() -> HtmlConfig:
    """The layouts and label table from ``pipeline/resources/html_markets.yaml`` (loaded once)."""
    text = resources.files("pipeline").joinpath("resources", "html_markets.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    labels = {_norm_label(label): target for target, names in data["labels"].items() for label in names}
    layouts = []
    for name, spec in data["markets"].items():
        fields = {
            key: _selector(value)
            for key, value in spec.items()
            if key not in ("market", "detect", "crumbs", "pairs")
        }
        crumbs = _selector(spec["crumbs"]) if spec.get("crumbs") else None
        layouts.append(
            Layout(
                name, spec.get("market", name), spec["detect"], fields, crumbs, tuple(spec.get("pairs") or ())
            )
        )
    drop = frozenset(c.lower() for c in data.get("drop_crumbs") or ())
    return HtmlConfig(tuple(layouts), labels, drop)


# --- text --------------------------------------------------------------------------------------------------


def _norm_label(label: str) -> str:
    return _WS.sub(" ", label).strip().rstrip(":：").strip().lower()


def block_text(node: Node, skip_chrome: bool = False) -> str:
    """The text of ``node`` as a browser lays it out: paragraphs separated by a blank line, lines by "\\n".

    Block elements owe line breaks before and after them; owed breaks are merged (a <li> closing and the next
    opening make one line break, not two) and paid only when more text follows. Iterative (no recursion),
    so deeply nested junk HTML cannot overflow the stack.
    """
    out: list[str] = []
    owed = 0  # newlines due before the next text
    stack: list[Node | int] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, int):
            owed = max(owed, item)
            continue
        if item.is_text_node:
            text = _WS.sub(" ", item.text_content or "")
            if text.strip():
                if owed and out:
                    out.append("\n" * owed)
                owed = 0
                out.append(text)
            elif text and not owed:
                out.append(" ")
            continue
        tag = item.tag or ""
        if tag in _SKIP or tag.startswith(("-", "!")) or (skip_chrome and tag in _CHROME):
            continue
        if tag == "br":
            out.append("\n" * max(owed, 1) if out else "")
            owed = 0
            continue
        brk = 2 if tag in _PARA else 1 if tag in _LINE else 0
        if brk:
            owed = max(owed, brk)
            stack.append(brk)
        elif tag in _CELL:
            out.append(" ")
        stack.extend(reversed(list(item.iter(include_text=True))))
    lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _line_text(node: Node) -> str:
    """Text of an inline element (a title, a price) on one line."""
    return " ".join(block_text(node).split())


def _select(root: Node, sel: Selector) -> str | None:
    node = root.css_first(sel.css)
    if node is None:
        return None
    if sel.attr:
        value = node.attributes.get(sel.attr)
        return value.strip() or None if value else None
    return _line_text(node) or None


# --- page reading ------------------------------------------------------------------------------------------


@dataclass
class PageFields:
    """What one page yields before it becomes a record."""

    layout: str | None = None  # the matched layout, None for the generic fallback
    market: str | None = None
    listing_id: str | None = None
    title: str | None = None
    body: str | None = None
    vendor: str | None = None
    price_text: str | None = None
    currency: str | None = None
    ships_from_raw: str | None = None
    ships_to_raw: str | None = None
    posted_at: str | None = None
    crumbs: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)  # every label/value pair read from a table or dl
    url: str | None = None


def _pairs(container: Node) -> list[tuple[str, str]]:
    """(label, value) pairs of a <dl>, <table>/<tr> or a block of "Label: value" lines."""
    tag = container.tag
    out: list[tuple[str, str]] = []
    if tag == "dl":
        label = None
        for child in container.iter():
            if child.tag == "dt":
                label = _line_text(child)
            elif child.tag == "dd" and label:
                out.append((label, _line_text(child)))
        return out
    rows = [container] if tag == "tr" else container.css("tr")
    if rows:
        for row in rows:
            cells = [c for c in row.iter() if c.tag in _CELL]
            if len(cells) >= 2:
                out.append((_line_text(cells[0]), _line_text(cells[1])))
        return out
    for line in block_text(container).split("\n"):
        match = _LABEL_LINE.match(line)
        if match:
            out.append((match[1], match[2]))
    return out


def _apply_pairs(page: PageFields, pairs: list[tuple[str, str]], known_only: bool = False) -> None:
    labels = html_config().labels
    for label, value in pairs:
        key = _norm_label(label)
        if not key or not value:
            continue
        target = labels.get(key)
        if not known_only and len(page.details) < _MAX_DETAILS:
            page.details.setdefault(label.strip().rstrip(":：").strip(), value)
        if target == "price" and page.price_text is None:
            page.price_text = value
        elif target == "category_raw" and not page.crumbs:
            page.crumbs = [c for c in _CRUMB_SPLIT.split(value) if c]
        elif (
            target in ("vendor", "ships_from_raw", "ships_to_raw", "posted_at")
            and getattr(page, target) is None
        ):
            setattr(page, target, value)


def _crumbs(root: Node, sel: Selector | None, drop: frozenset[str]) -> list[str]:
    if sel is None:
        node = root.css_first(_CRUMB_CSS)
        if node is None:
            return []
        items = node.css("li")
        texts = [_line_text(li) for li in items] if items else _CRUMB_SPLIT.split(_line_text(node))
    elif sel.split:
        node = root.css_first(sel.css)
        texts = [t.strip() for t in _line_text(node).split(sel.split)] if node is not None else []
    else:
        texts = [_line_text(n) for n in root.css(sel.css)]
    return [t for t in texts if t and t.lower() not in drop]


def _own_text_length(node: Node) -> int:
    """Characters of text in ``node`` outside nested containers (its share of the "largest block").

    Tables and definition lists are left out: they hold label/value fields, and their cells compete on
    their own.
    """
    total = 0
    for child in node.iter(include_text=True):
        if child.is_text_node:
            total += len((child.text_content or "").strip())
        elif child.tag not in _NOT_OWN_TEXT:
            total += len(child.text(deep=True).strip())
    return total


def _is_chrome(node: Node) -> bool:
    if node.tag in _CHROME:
        return True
    classes = node.attributes.get("class") or ""
    return "crumb" in classes.lower()


def _largest_block(body: Node) -> Node | None:
    """The container with the most text of its own, outside page chrome (nav, header, footer, crumbs)."""
    best, best_score = None, 0
    stack = [body]
    while stack:  # depth-first by hand: chrome subtrees are skipped whole, and no recursion limit applies
        node = stack.pop()
        if node.tag in _CONTAINERS:
            score = _own_text_length(node)
            if score > best_score:
                best, best_score = node, score
        stack.extend(child for child in node.iter() if not _is_chrome(child) and child.tag not in _SKIP)
    return best


def _meta(root: Node, css: str) -> str | None:
    node = root.css_first(css)
    value = node.attributes.get("content") if node is not None else None
    return " ".join(value.split()) or None if value else None


def _generic(tree: HTMLParser, page: PageFields, drop: frozenset[str]) -> None:
    """Fill the still-empty fields of ``page`` the way any listing page can be read."""
    root = tree.root
    if root is None:
        return
    if not page.crumbs:
        page.crumbs = _crumbs(root, None, drop)
    for container in root.css("dl, table"):
        _apply_pairs(page, _pairs(container))
    body_node = tree.body
    if page.title is None:
        h1 = root.css_first("h1")
        title_node = root.css_first("title")
        page.title = (
            (_line_text(h1) if h1 is not None else None)
            or (" ".join(title_node.text().split()) if title_node is not None else None)
            or _meta(root, 'meta[property="og:title"]')
        )
    if body_node is not None:
        # "Ships from: Netherlands" written as a line of text; only known labels, a sentence is no field
        lines = block_text(body_node, skip_chrome=False).split("\n")
        _apply_pairs(page, [(m[1], m[2]) for m in map(_LABEL_LINE.match, lines) if m], known_only=True)
    if page.body is None:
        meta = _meta(root, 'meta[name="description"]') or _meta(root, 'meta[property="og:description"]')
        block = _largest_block(body_node) if body_node is not None else None
        text = block_text(block, skip_chrome=True) if block is not None else ""
        page.body = text if len(text) >= len(meta or "") and text else meta
    if page.market is None:
        page.market = _meta(root, 'meta[property="og:site_name"]')
    if page.url is None:
        canonical = root.css_first('link[rel="canonical"]')
        href = canonical.attributes.get("href") if canonical is not None else None
        page.url = href or _meta(root, 'meta[property="og:url"]')


def parse_page(html: str | bytes) -> PageFields:
    """Read one listing page: the first matching market layout, the generic fallback for the rest."""
    tree = HTMLParser(html)
    config = html_config()
    page = PageFields()
    root = tree.root
    if root is None:
        return page
    for layout in config.layouts:
        if root.css_first(layout.detect) is None:
            continue
        page.layout, page.market = layout.name, layout.market
        values = {name: _select(root, sel) for name, sel in layout.fields.items()}
        body_sel = layout.fields.get("body")
        if body_sel is not None and not body_sel.attr:
            node = root.css_first(body_sel.css)
            values["body"] = block_text(node) or None if node is not None else None
        page.listing_id = values.get("listing_id")
        page.title = values.get("title")
        page.body = values.get("body")
        page.vendor = values.get("vendor")
        page.price_text = values.get("price")
        page.currency = values.get("currency")
        page.ships_from_raw = values.get("ships_from_raw")
        page.ships_to_raw = values.get("ships_to_raw")
        page.posted_at = values.get("posted_at")
        page.crumbs = _crumbs(root, layout.crumbs, config.drop_crumbs) if layout.crumbs else []
        for css in layout.pairs:
            for container in root.css(css):
                _apply_pairs(page, _pairs(container))
        break
    _generic(tree, page, config.drop_crumbs)
    return page


def decode_html(data: bytes) -> str:
    """Page bytes to text: UTF-8 (BOM or not), else the declared charset, else cp1252; bad bytes replaced."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    declared = _CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared[1].decode("ascii"), "replace")
        except LookupError:
            pass
    return data.decode("cp1252", "replace")


class HtmlReader(SourceReader):
    """Reads one page file, or every .html/.htm page under a folder (recursive, sorted): one record each."""

    adapter = ADAPTER

    def __init__(self, path: Path | str, source: str) -> None:
        super().__init__(path, source)
        self._paths = list_files(self.path, SUFFIXES) if self.path.is_dir() else [self.path]
        self.files = [str(p) for p in self._paths]
        self.layouts_used: dict[str, int] = {}

    def _iter(self) -> Iterator[Item]:
        self.layouts_used = {}
        for path in self._paths:
            yield self._read_page(path)

    def _read_page(self, path: Path) -> Item:
        file = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
        if looks_binary(data[:8192]) and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return self.reject("unreadable_file", file, "file", "binary content, not HTML")
        text = (
            data.decode("utf-16", "replace")
            if data.startswith((b"\xff\xfe", b"\xfe\xff"))
            else decode_html(data)
        )
        page = parse_page(text)
        prov = Provenance(file, "page", ADAPTER)
        if not page.title and not page.body:
            return self.reject("no_text", file, "page", "page has no title or text", text[:300])
        layout = page.layout or "generic"
        self.layouts_used[layout] = self.layouts_used.get(layout, 0) + 1

        # the listing id when the layout has one, else the page's file name (relative to a folder source)
        page_name = path.relative_to(self.path).as_posix() if self.path.is_dir() else path.name
        native_key = page.listing_id or page_name
        price, currency = parse_price(page.price_text) if page.price_text else (None, None)
        extra: dict[str, Any] = {"layout": layout, "page": page_name}
        if page.listing_id:
            extra["listing_id"] = page.listing_id
        if page.crumbs:
            extra["category_path"] = page.crumbs
        if page.details:
            extra["details"] = page.details
        if page.url:
            extra["url"] = page.url
        if page.price_text and price is None:
            extra["price_raw"] = page.price_text
        if page.currency:
            code = normalise_currency(page.currency)
            if code is None:
                extra["currency_raw"] = page.currency
            currency = code or currency
        return RawRecord(
            source=self.source,
            kind="listing",
            provenance=prov,
            id=stable_id(self.source, native_key),
            native_key=native_key,
            market=page.market,
            vendor=page.vendor,
            title=page.title or None,
            body=page.body or None,
            price=price,
            currency=currency,
            ships_from_raw=page.ships_from_raw,
            ships_to_raw=page.ships_to_raw,
            category_raw="/".join(page.crumbs) or None,
            posted_at=page.posted_at,
            extra=extra,
        )
