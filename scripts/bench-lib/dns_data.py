#!/usr/bin/env python3
"""Data for scripts/bench-dns: the same accounts for acme-delegate (SQLite) and NSD (zone file),
and one dnsperf query file for both.

Usage: dns_data.py DB ZONEFILE QUERYFILE SAMPLEFILE DOMAIN ACCOUNTS QUERIES

The zone file's SOA rdata is left as the placeholder __SOA__, for the caller to fill in with
what acme-delegate serves (its serial is the start time).

DB must already carry acme-delegate's schema (the script has the binary create it, so the
migrations stay in one place); accounts and TXT values are inserted straight into it, as the
API would: username and subdomain random UUIDs, key_hash SHA-256 of a random 40-character key,
one 43-character base64url TXT value per subdomain.
"""
import hashlib
import random
import secrets
import sqlite3
import sys
import time
import uuid

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64url(n):
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def main():
    db, zonefile, queryfile, samplefile, domain, accounts, queries = sys.argv[1:8]
    accounts, queries = int(accounts), int(queries)
    domain = domain.rstrip(".").lower()
    now = int(time.time())

    rows = []
    for _ in range(accounts):
        rows.append((str(uuid.uuid4()), hashlib.sha256(b64url(40).encode()).digest(), str(uuid.uuid4()), b64url(43)))

    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at) VALUES (?, ?, ?, '[]', ?)",
            [(u, k, s, now) for u, k, s, _ in rows],
        )
        conn.executemany(
            "INSERT INTO txt (subdomain, value, updated_at) VALUES (?, ?, ?)",
            [(s, v, now) for _, _, s, v in rows],
        )
    conn.close()

    # NSD's zone: the same apex records as the acme-delegate config, TTLs as acme-delegate
    # serves them (static 3600, TXT 1, SOA 3600 with MINIMUM 30).
    with open(zonefile, "w") as f:
        f.write(f"$ORIGIN {domain}.\n$TTL 3600\n")
        f.write("@ 3600 IN SOA __SOA__\n")
        f.write(f"@ 3600 IN NS ns1.{domain}.\n")
        f.write(f"@ 3600 IN A 127.0.0.1\n")
        f.write(f"ns1 3600 IN A 127.0.0.1\n")
        for _, _, s, v in rows:
            f.write(f'{s} 1 IN TXT "{v}"\n')

    # Queries: 90% existing TXT, 5% nonexistent names (TXT), 5% apex SOA/NS/A; shuffled.
    rng = random.Random(1)
    lines = []
    n_missing = queries * 5 // 100
    n_apex = queries * 5 // 100
    n_txt = queries - n_missing - n_apex
    for _ in range(n_txt):
        lines.append(f"{rng.choice(rows)[2]}.{domain} TXT")
    for _ in range(n_missing):
        lines.append(f"{uuid.UUID(int=rng.getrandbits(128), version=4)}.{domain} TXT")
    apex_types = ["SOA", "NS", "A"]
    for i in range(n_apex):
        lines.append(f"{domain} {apex_types[i % 3]}")
    rng.shuffle(lines)
    with open(queryfile, "w") as f:
        f.write("\n".join(lines) + "\n")

    with open(samplefile, "w") as f:
        f.write(f"{rows[0][2]}.{domain} {rows[0][3]}\n")


if __name__ == "__main__":
    main()
