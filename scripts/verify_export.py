#!/usr/bin/env python3
"""Re-verify an exported audit history offline, with nothing but Python and the audit key.

    flask --app wsgi audit export history.jsonl        # on the server
    AUDIT_KEY=… [AUDIT_KEYS=…] python3 scripts/verify_export.py history.jsonl [--anchor kept.json]

Checks every event's HMAC-SHA256 seal (under the key its `key_id` names), that each chain runs
1, 2, 3… with every event naming its predecessor's hash, that the chains end where the export's
anchor says, and that the anchor's root is sealed with the key. With --anchor, a head kept
earlier (`flask audit anchor --out …`) must still be in the history, hash for hash.
Exit 0 and `OK <n> events`, or 1 and one line per problem. Needs no project code.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys

HASHED_FIELDS = (
    "id", "at", "chain_key", "chain_seq", "prev_hash", "document_id", "flow", "flow_version",
    "actor", "action", "outcome", "code", "from_state", "to_state", "revision", "comment",
    "details", "key_id", "data_hash",
)  # fmt: skip
GENESIS = "0" * 64


def key_id_of(secret: str) -> str:
    return "k" + hashlib.sha256(b"fuhe-audit-key-id\0" + secret.encode()).hexdigest()[:10]


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def seal(keys: dict[str, bytes], key_id: str | None, text: str) -> str | None:
    secret = keys.get(key_id or "")
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest() if secret else None


def verify(
    lines: list[str] | object, keys: dict[str, bytes], kept: dict | None
) -> tuple[int, list[str]]:
    problems: list[str] = []
    anchor: dict | None = None
    chains: dict[str, tuple[int, str]] = {}
    heads: dict[str, str] = {}  # (key, seq) of a kept anchor → the hash seen there
    count = 0
    for number, line in enumerate(lines, 1):  # type: ignore[arg-type]
        if not line.strip():
            continue
        record = json.loads(line)
        if "anchor" in record:
            anchor = record["anchor"]
            continue
        count += 1
        key, seq = record["chain_key"], record["chain_seq"]
        last_seq, last_hash = chains.get(key, (0, GENESIS))
        label = f"line {number}: event {record['id']} ({key} #{seq})"
        if seq != last_seq + 1:
            problems.append(f"{label}: event #{last_seq + 1} is missing")
        elif record["prev_hash"] != last_hash:
            problems.append(f"{label} does not follow its predecessor")
        sealed = seal(keys, record.get("key_id"), canonical({k: record[k] for k in HASHED_FIELDS}))
        if sealed is None:
            problems.append(
                f"{label} is sealed with a key you did not give (`{record.get('key_id')}`)"
            )
        elif not hmac.compare_digest(sealed, record["hash"]):
            problems.append(f"{label} was altered or forged: its seal does not match")
        chains[key] = (seq, record["hash"])
        heads[f"{key}#{seq}"] = record["hash"]
    if anchor is None:
        problems.append("the export has no anchor line")
        return count, problems
    digest = hashlib.sha256()
    for key, (length, head) in sorted(anchor["chains"].items()):
        digest.update(f"{key}|{length}|{head}\n".encode())
        if chains.get(key, (0, GENESIS)) != (length, head):
            problems.append(f"chain `{key}` does not end where the export's anchor says")
    root = seal(keys, anchor.get("key_id"), digest.hexdigest())
    if root is None or not hmac.compare_digest(root, anchor.get("root") or ""):
        problems.append("the export's anchor is not sealed with the key")
    for key in sorted(set(chains) - set(anchor["chains"])):
        problems.append(f"chain `{key}` is not in the export's anchor")
    for key, (length, head) in (kept or {}).get("chains", {}).items():
        if length and heads.get(f"{key}#{length}") != head:
            problems.append(f"chain `{key}` #{length} differs from the kept anchor")
    return count, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="a file written by `flask --app wsgi audit export`")
    parser.add_argument("--anchor", help="a head kept earlier (`flask --app wsgi audit anchor`)")
    args = parser.parse_args(argv)
    secrets = [os.environ.get("AUDIT_KEY", "")]
    secrets += os.environ.get("AUDIT_KEYS", "").replace(",", " ").split()
    keys = {key_id_of(s): s.encode() for s in secrets if s}
    if not keys:
        print("set AUDIT_KEY (and AUDIT_KEYS for older keys) in the environment", file=sys.stderr)
        return 2
    kept = None
    if args.anchor:
        with open(args.anchor, encoding="utf-8") as f:
            kept = json.load(f)
    with open(args.export, encoding="utf-8") as f:
        count, problems = verify(f, keys, kept)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"OK {count} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
