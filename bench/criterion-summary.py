#!/usr/bin/env python3
"""Prints the last `cargo bench` results of benches/*.rs as a Markdown table, with the ratios
the performance targets are stated in (BENCHMARKS.md).

    cargo bench --bench mint --bench verify --bench handler
    python3 bench/criterion-summary.py [TARGET_DIR]

TARGET_DIR defaults to $CARGO_TARGET_DIR or ./target. Times are criterion's median estimates.
"""

import json
import os
import sys
from pathlib import Path

target = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target"))
root = target / "criterion"
if not root.is_dir():
    sys.exit(f"no criterion results under {root}: run cargo bench first")

results = {}
for bench in root.glob("**/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    estimates = json.loads((bench.parent / "estimates.json").read_text())
    results[meta["full_id"]] = estimates["median"]["point_estimate"]  # nanoseconds


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


# (label, numerator, denominator, target)
RATIOS = [
    ("sign-only mint ÷ raw HMAC", "mint/signer_sign", "mint/raw_hmac_sha256", "≤ 3"),
    ("policy + mint ÷ raw HMAC", "mint/runtime_mint", "mint/raw_hmac_sha256", ""),
    ("RS256 verify, key rebuilt per call ÷ parsed key", "verify/RS256/raw_unparsed_key",
     "verify/RS256/raw_parsed_key", ""),
    ("RS256 authenticator, distinct ÷ raw", "verify/RS256/authenticator_distinct",
     "verify/RS256/raw_parsed_key", ""),
    ("RS256 authenticator, same token ÷ raw", "verify/RS256/authenticator_same_token",
     "verify/RS256/raw_parsed_key", ""),
    ("ES256 verify, key rebuilt per call ÷ parsed key", "verify/ES256/raw_unparsed_key",
     "verify/ES256/raw_parsed_key", ""),
    ("ES256 authenticator, distinct ÷ raw", "verify/ES256/authenticator_distinct",
     "verify/ES256/raw_parsed_key", ""),
    ("ES256 authenticator, same token ÷ raw", "verify/ES256/authenticator_same_token",
     "verify/ES256/raw_parsed_key", ""),
    ("handler RS256 distinct ÷ raw RS256 verify", "handler/RS256_distinct",
     "verify/RS256/raw_parsed_key", ""),
    ("handler RS256 same token ÷ raw RS256 verify", "handler/RS256_same_token",
     "verify/RS256/raw_parsed_key", ""),
    ("handler ES256 distinct ÷ raw ES256 verify", "handler/ES256_distinct",
     "verify/ES256/raw_parsed_key", ""),
]

print("| benchmark | median |")
print("|---|---|")
for name in sorted(results):
    print(f"| `{name}` | {fmt(results[name])} |")
print()
print("| ratio | value | target |")
print("|---|---|---|")
for label, num, den, goal in RATIOS:
    if num in results and den in results:
        print(f"| {label} | {results[num] / results[den]:.2f} | {goal} |")
