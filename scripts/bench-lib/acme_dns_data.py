#!/usr/bin/env python3
"""Data for scripts/bench-scale: an acme-dns SQLite database as acme-dns leaves it, and the same
records as an NSD zone file.

Usage: acme_dns_data.py DB ZONEFILE SAMPLEFILE DOMAIN ACCOUNTS

acme-dns's schema (records, txt), ACCOUNTS accounts with random UUIDs for username and
subdomain, a distinct bcrypt-like hash each (acme-dns stores bcrypt hashes; the import copies
them without checking, so distinct strings of the right shape are as good and cost nothing to
make), and two txt rows per account with a 43-character value each (an account updated at least
twice), written in one transaction. The zone file holds the two TXT records of each name; its
SOA rdata is the placeholder __SOA__ for the caller to fill in. SAMPLEFILE gets one name and its
two values, to check both servers answer the same.
"""
import base64
import os
import sqlite3
import sys
import time
import uuid


def value():
    return base64.urlsafe_b64encode(os.urandom(33)).decode()[:43]


def main():
    db, zonefile, samplefile, domain, accounts = sys.argv[1:6]
    accounts = int(accounts)
    domain = domain.rstrip(".").lower()
    started = time.time()
    salt = base64.b64encode(os.urandom(16)).decode()[:22].replace("+", ".")
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        PRAGMA journal_mode = OFF;
        PRAGMA synchronous = OFF;
        CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
            Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
        CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);
        """
    )
    now = int(started)
    with open(zonefile, "w") as zone, conn:
        zone.write(f"$ORIGIN {domain}.\n$TTL 3600\n")
        zone.write("@ 3600 IN SOA __SOA__\n")
        zone.write(f"@ 3600 IN NS ns1.{domain}.\n@ 3600 IN A 127.0.0.1\nns1 3600 IN A 127.0.0.1\n")
        chunk = 50_000
        for start in range(0, accounts, chunk):
            records, txt, lines = [], [], []
            for n in range(start, min(start + chunk, accounts)):
                sub = str(uuid.uuid4())
                # "$2a$10$" + 22 characters of salt + 31 of hash: 60, as bcrypt's. Distinct by n.
                password = f"$2a$10${salt}{n:031d}".encode()
                records.append((str(uuid.uuid4()), password, sub, "[]"))
                a, b = value(), value()
                txt.append((sub, a, now - 60))
                txt.append((sub, b, now))
                lines.append(f"{sub} 1 IN TXT \"{a}\"\n{sub} 1 IN TXT \"{b}\"\n")
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", records)
            conn.executemany("INSERT INTO txt VALUES (?, ?, ?)", txt)
            zone.writelines(lines)
        with open(samplefile, "w") as f:
            f.write(f"{sub}.{domain} {a} {b}\n")
    conn.close()
    print(f"acme-dns database: {accounts} accounts, {2 * accounts} txt rows in {time.time() - started:.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
