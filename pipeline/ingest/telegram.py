"""Telegram adapter: Telegram Desktop "Export chat history" files (``result.json``, machine-readable JSON).

Two shapes are read: a single chat/channel export (top level ``name``, ``type``, ``id``, ``messages``) and a
full-account export (``chats.list[*]``, and ``left_chats.list[*]``, each a chat with its own ``messages``).

Each message of type "message" becomes one record (kind "ad") or one ``Rejected``; "service" messages
(channel created, pinned, joined ...) are not records at all: they are counted in
``skipped["service_message"]`` so the clean report can show them, and are neither kept nor quarantined.

Message text is a plain string or a list of strings and entity objects (``{"type": "bold", "text": ..}``);
``text_entities`` is used when ``text`` is empty, and ``caption`` (older exports) after that. A message
with no text (a photo without caption, a sticker) is rejected ``no_text``. The whole file is one JSON
document, so a truncated or invalid file is one ``unreadable_file``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.ingest.records import Item, Provenance, RawRecord, Rejected, SourceReader, list_files

try:  # orjson reads a 100 MB export several times faster than json
    import orjson

    _loads: Any = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

ADAPTER = "telegram"
#: files a folder source is searched for (the export's own name)
EXPORT_NAMES: tuple[str, ...] = ("result.json",)
#: media keys of a message, in the order they name its media type
_MEDIA_KEYS: tuple[str, ...] = ("photo", "file", "poll", "location_information", "contact_information")


def flatten_text(value: Any) -> str:
    """Telegram's ``text``, ``text_entities`` or ``caption``: a string, or a list of strings and entities."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def _links(*values: Any) -> list[str]:
    """URLs of ``text_link`` entities (their ``href``) and of ``link`` entities (their text), in order."""
    links: list[str] = []
    for value in values:
        if not isinstance(value, list):
            continue
        for part in value:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            url = part.get("href") if kind == "text_link" else part.get("text") if kind == "link" else None
            if isinstance(url, str) and url and url not in links:
                links.append(url)
    return links


def _media_type(message: Mapping[str, Any]) -> str | None:
    media = message.get("media_type")
    if isinstance(media, str) and media:
        return media
    for key in _MEDIA_KEYS:
        if message.get(key):
            return key
    return None


def _chats(data: Any) -> list[Mapping[str, Any]] | None:
    """The chats of an export (one for a single-chat export), or None when it is no Telegram export."""
    if not isinstance(data, Mapping):
        return None
    if isinstance(data.get("messages"), list):
        return [data]
    chats: list[Mapping[str, Any]] = []
    found = False
    for key in ("chats", "left_chats"):
        section = data.get(key)
        listed = section.get("list") if isinstance(section, Mapping) else None
        if isinstance(listed, list):
            found = True
            chats.extend(c for c in listed if isinstance(c, Mapping))
    return chats if found else None


class TelegramReader(SourceReader):
    """Reads a Telegram Desktop ``result.json`` (or every ``result.json`` under a folder, sorted).

    Record id: ``tg:<chat id>:<message id>`` (the export's own numbers; the chat's name stands in when an
    export lacks the chat id). ``skipped["service_message"]`` counts the service messages passed over.
    """

    adapter = ADAPTER

    def __init__(self, path: Path | str, source: str) -> None:
        super().__init__(path, source)
        self._paths = list_files(self.path, EXPORT_NAMES) if self.path.is_dir() else [self.path]
        self.files = [str(p) for p in self._paths]

    @property
    def skipped_service(self) -> int:
        """Service messages skipped in the last iteration."""
        return self.skipped.get("service_message", 0)

    def _iter(self) -> Iterator[Item]:
        for path in self._paths:
            yield from self._read_export(path)

    def _read_export(self, path: Path) -> Iterator[Item]:
        file = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
            return
        try:
            export = _loads(data)
        except ValueError:
            try:  # bad UTF-8 somewhere in a long export: repair it rather than lose the channel
                export = json.loads(data.decode("utf-8", "replace"))
            except (ValueError, RecursionError) as exc:
                excerpt = data[-200:].decode("utf-8", "replace")
                yield self.reject(
                    "unreadable_file", file, "file", f"invalid or truncated JSON: {exc}", excerpt
                )
                return
        chats = _chats(export)
        if chats is None:
            detail = "not a Telegram Desktop export (no messages, no chats.list)"
            yield self.reject("unreadable_file", file, "file", detail, data[:300].decode("utf-8", "replace"))
            return
        single = len(chats) == 1 and chats[0] is export
        for chat in chats:
            yield from self._read_chat(chat, file, single)

    def _read_chat(self, chat: Mapping[str, Any], file: str, single: bool) -> Iterator[Item]:
        name = chat.get("name") if isinstance(chat.get("name"), str) else None
        raw_id = chat.get("id")
        chat_id = str(raw_id) if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else None
        chat_key = chat_id or name or "unknown"
        chat_type = chat.get("type")
        messages = chat.get("messages")
        if not isinstance(messages, list):
            return  # a chat listed without messages (exported without history): nothing to read
        where = "" if single else f"chat {chat_key} "
        for index, message in enumerate(messages, 1):
            if not isinstance(message, Mapping):
                prov = Provenance(file, f"{where}message #{index}", ADAPTER)
                detail = f"message is a {type(message).__name__}, not an object"
                yield Rejected(self.source, "invalid_record", prov, detail, repr(message))
                continue
            if message.get("type") == "service":
                self.skip("service_message")
                continue
            msg_id = message.get("id")
            if isinstance(msg_id, bool) or not isinstance(msg_id, int | str) or msg_id == "":
                prov = Provenance(file, f"{where}message #{index}", ADAPTER)
                yield Rejected(
                    self.source, "invalid_record", prov, "message without an id", _excerpt(message)
                )
                continue
            prov = Provenance(file, f"{where}message {msg_id}", ADAPTER)
            text_value = message.get("text")
            entities = message.get("text_entities")
            text = flatten_text(text_value)
            if not text.strip():
                text = flatten_text(entities)
            if not text.strip():
                text = flatten_text(message.get("caption"))
            if not text.strip():
                yield Rejected(
                    self.source, "no_text", prov, "message has no text or caption", _excerpt(message)
                )
                continue
            sender = message.get("from")
            if sender is not None and not isinstance(sender, str):
                sender = str(sender)
            date = message.get("date")
            edited = message.get("edited")
            forwarded = message.get("forwarded_from")
            extra: dict[str, Any] = {
                "channel_id": chat_id,
                "channel_type": chat_type if isinstance(chat_type, str) else None,
                "forwarded_from": forwarded if isinstance(forwarded, str) else None,
                "edited": bool(edited),
                "edited_at": edited if isinstance(edited, str) else None,
                "media_type": _media_type(message),
                "links": _links(text_value, entities, message.get("caption")),
            }
            if isinstance(message.get("from_id"), str):
                extra["from_id"] = message["from_id"]
            if isinstance(message.get("reply_to_message_id"), int):
                extra["reply_to_message_id"] = message["reply_to_message_id"]
            yield RawRecord(
                source=self.source,
                kind="ad",
                provenance=prov,
                id=f"tg:{chat_key}:{msg_id}",
                native_key=f"{chat_key}:{msg_id}",
                market=name,
                vendor=sender or None,
                body=text,
                posted_at=date if isinstance(date, str) else None,
                extra=extra,
            )


def _excerpt(message: Mapping[str, Any]) -> str:
    try:
        return json.dumps(message, ensure_ascii=False, default=str)[:300]
    except (TypeError, ValueError):  # pragma: no cover
        return repr(message)[:300]
