"""The outbox provider: appends each message as one JSON line to ``<channel>.jsonl``.

The embedded default for every channel. Each line is written with a single ``os.write`` on an
``O_APPEND`` descriptor, so several worker processes never interleave or tear lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from herald import clock
from herald.channels.base import Message, PermanentError, Provider, SendResult


class OutboxProvider(Provider):
    """Writes to ``HERALD_OUTBOX_DIR/<channel>.jsonl`` instead of a real provider."""

    name = "outbox"
    _fd: int | None = None

    @property
    def path(self) -> Path:
        """The file this channel's messages are appended to."""
        return self.settings.outbox_dir / f"{self.channel}.jsonl"

    async def start(self) -> None:
        """Open the outbox file for appending (creating its folder)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    async def close(self) -> None:
        """Close the outbox file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def send(self, message: Message) -> SendResult:
        """Append one line: key, reminder, account, recipient, content, time."""
        if self._fd is None:
            await self.start()
        assert self._fd is not None
        line = (
            orjson.dumps(
                {
                    "key": message.key,
                    "reminder_id": message.reminder_id,
                    "account_id": message.account_id,
                    "kind": message.kind,
                    "channel": message.channel,
                    "to": message.address,
                    "locale": message.rendered.locale,
                    "content": message.rendered.content(),
                    "at": clock.now().isoformat(timespec="milliseconds"),
                }
            )
            + b"\n"
        )
        try:
            written = os.write(self._fd, line)
        except OSError as exc:  # nothing was appended: a disk that is full stays full
            raise PermanentError(f"outbox write failed: {exc}", code="outbox") from exc
        if written != len(line):
            raise PermanentError("outbox write was short (disk full?)", code="outbox")
        return SendResult(provider_ref=f"outbox:{message.key}")
