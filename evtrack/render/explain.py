"""``evtrack explain`` as plain text (one screen) or JSON."""

from __future__ import annotations

import json

from evtrack.explain import Explanation
from evtrack.render.words import short_channel
from evtrack.report import Proof


def _proof_line(proof: Proof) -> str:
    which = proof.window + " " + proof.which if proof.window else proof.which
    placed = f" (counted at {proof.placed:%Y-%m-%d %H:%M}Z: misdated)" if proof.placed else ""
    return (f"  {which:<22} {short_channel(proof.channel)} {proof.event_id} record {proof.record_id} on {proof.host}, "
            f"{proof.local_time:%Y-%m-%d %H:%M:%S %z}{placed}, rule {proof.rule}\n"
            f"  {'':<22} in {proof.file}")


def explanation_text(item: Explanation) -> str:
    lines = [item.summary]
    if item.key and item.key != item.name:
        lines.append(f"Key: {item.key}")
    if item.links:
        lines.append("Known as:")
        lines += [f"  {link.form}: {link.how}" for link in item.links]
    if item.proof:
        lines.append("Proof:" if item.counted else "Seen in:")
        lines += [_proof_line(p) for p in item.proof]
        first = item.proof[0]
        lines.append(f"Check by hand: open the file in Event Viewer, Filter Current Log > XML > Edit query "
                     f"manually: *[System[EventRecordID={first.record_id}]]")
    lines += list(item.details)
    if item.near:
        lines.append("Did you mean: " + ", ".join(item.near) + "?")
    return "\n".join(lines) + "\n"


def explanation_json(item: Explanation) -> str:
    return json.dumps(item.to_dict(), indent=2, ensure_ascii=False) + "\n"
