"""Ingest: the Telegram Desktop export adapter on made-up exports of both shapes and on broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest import RawRecord, Rejected, detect_adapter, read_source
from pipeline.ingest.telegram import TelegramReader, flatten_text

CHANNEL_ID = 1234567890


def message(msg_id: int, text: Any = "", **fields: Any) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "date": f"2025-01-0{1 + msg_id % 9}T10:00:00",
        "date_unixtime": "1735725600",
        "from": "Test Channel",
        "from_id": f"channel{CHANNEL_ID}",
        "text": text,
        "text_entities": [],
        **fields,
    }


def service(msg_id: int, action: str) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "service",
        "date": "2025-01-01T09:00:00",
        "actor": "Test Channel",
        "actor_id": f"channel{CHANNEL_ID}",
        "action": action,
        "text": "",
        "text_entities": [],
    }


MESSAGES: list[dict[str, Any]] = [
    service(1, "create_channel"),
    message(2, "Made-up plain offer, 5g, DM @test_handle"),
    message(
        3,
        [
            {"type": "bold", "text": "MADE-UP MENU"},
            "\nItem A 10 / Item B 20\n",
            {"type": "mention", "text": "@made_up_shop"},
            " ",
            {"type": "text_link", "text": "order here", "href": "https://example.org/order"},
            " ",
            {"type": "link", "text": "https://example.org/menu"},
        ],
        text_entities=[
            {"type": "bold", "text": "MADE-UP MENU"},
            {"type": "plain", "text": "\nItem A 10 / Item B 20\n"},
        ],
    ),
    message(
        4,
        "",
        text_entities=[{"type": "plain", "text": "Made-up text from "}, {"type": "bold", "text": "entities"}],
    ),
    message(5, "", photo="photos/photo_1.jpg", width=800, height=600, caption="Made-up caption offer"),
    message(6, "Made-up text beside a photo", photo="photos/photo_2.jpg"),
    message(7, "", photo="photos/photo_3.jpg"),  # photo without caption -> no_text
    message(8, "", file="stickers/sticker.webp", media_type="sticker", sticker_emoji="\U0001f600"),  # no_text
    message(9, "Made-up forwarded offer", forwarded_from="Other Made-up Channel"),
    message(10, "Made-up edited offer", edited="2025-01-02T11:00:00", edited_unixtime="1735815600"),
    service(11, "pin_message"),
    message(12, "Made-up voice note text", file="voice/1.ogg", media_type="voice_message"),
]


def channel_export(messages: list[Any] = MESSAGES) -> dict[str, Any]:
    return {"name": "Test Channel", "type": "public_channel", "id": CHANNEL_ID, "messages": messages}


def write_export(folder: Path, data: Any, name: str = "result.json") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def test_single_channel_export(tmp_path: Path) -> None:
    path = write_export(tmp_path, channel_export())
    assert detect_adapter(path) == "telegram"
    reader = read_source(path, "sample_telegram")
    assert isinstance(reader, TelegramReader)
    items = list(reader)
    records = {r.provenance.locator: r for r in items if isinstance(r, RawRecord)}
    rejected = {r.provenance.locator: r.reason for r in items if isinstance(r, Rejected)}
    # every non-service message is one item; service messages are counted, not quarantined
    assert len(items) == len(MESSAGES) - 2
    assert reader.skipped == {"service_message": 2} and reader.skipped_service == 2
    assert reader.files == [str(path)]
    assert rejected == {"message 7": "no_text", "message 8": "no_text"}

    plain = records["message 2"]
    assert plain.id == f"tg:{CHANNEL_ID}:2" and plain.native_key == f"{CHANNEL_ID}:2"
    assert (plain.kind, plain.market, plain.vendor) == ("ad", "Test Channel", "Test Channel")
    assert plain.body == "Made-up plain offer, 5g, DM @test_handle" and plain.title is None
    assert plain.posted_at == "2025-01-03T10:00:00"
    assert plain.extra["channel_id"] == str(CHANNEL_ID) and plain.extra["channel_type"] == "public_channel"
    assert plain.extra["edited"] is False and plain.extra["forwarded_from"] is None
    assert plain.extra["media_type"] is None and plain.extra["links"] == []

    menu = records["message 3"]
    assert menu.body == (
        "MADE-UP MENU\nItem A 10 / Item B 20\n@made_up_shop order here https://example.org/menu"
    )
    assert menu.extra["links"] == ["https://example.org/order", "https://example.org/menu"]

    assert records["message 4"].body == "Made-up text from entities"  # text empty: text_entities
    caption = records["message 5"]
    assert caption.body == "Made-up caption offer" and caption.extra["media_type"] == "photo"
    assert records["message 6"].extra["media_type"] == "photo"
    assert records["message 9"].extra["forwarded_from"] == "Other Made-up Channel"
    edited = records["message 10"]
    assert edited.extra["edited"] is True and edited.extra["edited_at"] == "2025-01-02T11:00:00"
    assert records["message 12"].extra["media_type"] == "voice_message"
    assert reader.counts == {"records": 8, "rejected": 2}

    # ids are the export's own numbers: the same export read twice (or by another source) gives the same ids
    again = [r.id for r in read_source(path, "other_name") if isinstance(r, RawRecord)]
    assert again == [r.id for r in records.values()]


def test_full_account_export(tmp_path: Path) -> None:
    data = {
        "about": "Made-up full export",
        "personal_information": {"first_name": "Test"},
        "chats": {
            "about": "chats",
            "list": [
                {
                    "name": "Chan A",
                    "type": "public_channel",
                    "id": 111,
                    "messages": [message(1, "made-up A1")],
                },
                {
                    "name": "Group B",
                    "type": "private_supergroup",
                    "id": 222,
                    "messages": [service(1, "invite_members"), message(1, "made-up B1"), message(2, "")],
                },
                {"name": "No history", "type": "personal_chat", "id": 333},
            ],
        },
        "left_chats": {
            "about": "left",
            "list": [
                {
                    "name": "Left C",
                    "type": "public_channel",
                    "id": 444,
                    "messages": [message(5, "made-up C5")],
                }
            ],
        },
    }
    path = write_export(tmp_path / "account", data)
    reader = read_source(tmp_path / "account", "acct")  # a folder holding a result.json
    items = list(reader)
    records = [i for i in items if isinstance(i, RawRecord)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.id for r in records] == ["tg:111:1", "tg:222:1", "tg:444:5"]
    assert [r.market for r in records] == ["Chan A", "Group B", "Left C"]
    assert [r.provenance.locator for r in records] == [
        "chat 111 message 1",
        "chat 222 message 1",
        "chat 444 message 5",
    ]
    assert [(r.reason, r.provenance.locator) for r in rejected] == [("no_text", "chat 222 message 2")]
    assert records[1].extra["channel_type"] == "private_supergroup"
    assert reader.skipped == {"service_message": 1} and reader.files == [str(path)]


@pytest.mark.parametrize(
    ("content", "detail_word"),
    [
        (None, "invalid"),  # truncated file (written below)
        (b"", "invalid"),
        (b"[1, 2, 3]", "not a Telegram"),
        (b'{"name": "x", "type": "public_channel"}', "not a Telegram"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "invalid"),
    ],
)
def test_unreadable_exports(tmp_path: Path, content: bytes | None, detail_word: str) -> None:
    path = tmp_path / "result.json"
    if content is None:
        whole = json.dumps(channel_export()).encode()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    items = list(read_source(path, "tg", adapter="telegram"))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, Rejected) and item.reason == "unreadable_file"
    assert detail_word in item.detail and item.provenance.locator == "file"


def test_missing_export(tmp_path: Path) -> None:
    items = list(read_source(tmp_path / "result.json", "tg"))
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["unreadable_file"] and len(items) == 1


def test_bad_messages_are_rejected_not_dropped(tmp_path: Path) -> None:
    msgs = [message(1, "made-up ok"), "not an object", {"type": "message", "text": "made-up, no id"}, 42]
    path = write_export(tmp_path, channel_export(msgs))
    items = list(read_source(path, "tg"))
    assert len(items) == 4
    assert [(i.reason, i.provenance.locator) for i in items if isinstance(i, Rejected)] == [
        ("invalid_record", "message #2"),
        ("invalid_record", "message #3"),
        ("invalid_record", "message #4"),
    ]


def test_export_without_chat_id_and_bad_utf8(tmp_path: Path) -> None:
    data = {"name": "Nameless", "type": "private_group", "messages": [message(7, "made-up caf\u00e9")]}
    raw = json.dumps(data, ensure_ascii=False).encode().replace("caf\u00e9".encode(), b"caf\xff")
    path = tmp_path / "export.json"
    path.write_bytes(raw)
    (record,) = list(read_source(path, "tg"))
    assert isinstance(record, RawRecord)
    assert record.id == "tg:Nameless:7" and record.body == "made-up caf\ufffd"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        (["a ", {"type": "bold", "text": "b"}, {"type": "custom_emoji", "text": "*"}], "a b*"),
        ([{"type": "bold"}, 5, None], ""),
        (None, ""),
        ({"text": "not a list"}, ""),
    ],
)
def test_flatten_text(value: Any, expected: str) -> None:
    assert flatten_text(value) == expected
