#!/usr/bin/env python3
"""Turns the Northwind customers (tests/data/northwind.sql, Ms-PL) into an erpsync push batch
for the `company` table, printed as JSON on stdout: {"records": [...]}.

Northwind has no CNPJ, so the document is made up: a valid CNPJ derived from the row
number, except with --keep-real-documents, where no document is sent and erpsync rejects
every record naming the missing field (what an ERP that forgot the CNPJ would see).
With --grpc TENANT the batch is printed as an ErpIngest.Push request for grpcurl
({"tenant_id": TENANT, "table": "company", "records": [...]}).
Reads the copy in this repository by default; no file outside the repository is needed.
Usage: scripts/northwind_companies.py [--keep-real-documents] [--grpc TENANT] [PATH_TO_northwind.sql]

Also the one reader of the dump for scripts/demo, which imports it: read_dump() and
company_records().
"""
import argparse
import json
import os
import re
import sys


def cnpj(n: int) -> str:
    digits = [int(c) for c in f"{n % 100_000_000:08d}0001"]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        r = sum(d * w for d, w in zip(digits, weights)) % 11
        digits.append(0 if r < 2 else 11 - r)
    s = "".join(map(str, digits))
    return f"{s[:2]}.{s[2:5]}.{s[5:8]}/{s[8:12]}-{s[12:]}"


def values(line: str):
    inner = line[line.index("(") + 1 : line.rindex(")")]
    out = []
    for m in re.finditer(r"'((?:[^']|'')*)'|(NULL)|([-0-9.]+)", inner):
        out.append(None if m.group(2) else (m.group(1).replace("''", "'") if m.group(1) is not None else m.group(3)))
    return out


# The Northwind dump the tests use, wherever the repository was cloned.
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "data", "northwind.sql")

_INSERT = re.compile(r"INSERT INTO (\w+) VALUES")


def read_dump(path: str, prog: str) -> dict:
    """The values of every `INSERT INTO table VALUES (...)` line of the dump, by table, in
    the dump's order. Exits with a message naming the file when it is missing, unreadable
    or has no customers (not the Northwind dump)."""
    path = os.path.normpath(path)
    rows = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = _INSERT.match(line)
                if m:
                    rows.setdefault(m.group(1), []).append(values(line))
    except FileNotFoundError:
        sys.exit(f"{prog}: {path} not found: it ships with the repository as "
                 "tests/data/northwind.sql (restore it with `git checkout -- tests/data/northwind.sql`) "
                 "or pass the path of a Northwind SQL dump")
    except OSError as e:
        sys.exit(f"{prog}: cannot read {path}: {e.strerror}")
    if not rows.get("customers"):
        sys.exit(f"{prog}: {path} has no `INSERT INTO customers VALUES` lines: is it the Northwind dump?")
    return rows


def company_records(customers, keep_real_documents: bool = False, sellers=None) -> list:
    """The customers as `company` records; the n-th (from 1) gets the made-up CNPJ cnpj(n)
    unless keep_real_documents. `sellers` maps a customer id to its seller's external id."""
    records = []
    for n, row in enumerate(customers, start=1):
        cid, name, _contact, _title, _addr, city, region, _postal, country, phone, _fax = row
        fields = {"name": name, "city": city, "state": region, "country": country, "phone": phone}
        if not keep_real_documents:
            fields["document"] = cnpj(n)
        if sellers and cid in sellers:
            fields["seller_id"] = sellers[cid]
        records.append({"external_id": cid, "fields": {k: v for k, v in fields.items() if v is not None}})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Prints the Northwind customers as an erpsync push batch for the company table.")
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH,
                        help="the Northwind SQL dump (default: tests/data/northwind.sql in this repository)")
    parser.add_argument("--keep-real-documents", action="store_true",
                        help="send no document (Northwind has none): erpsync rejects every record")
    parser.add_argument("--grpc", metavar="TENANT",
                        help="print an ErpIngest.Push request for TENANT (for grpcurl -d @)")
    args = parser.parse_args()
    customers = read_dump(args.path, parser.prog)["customers"]
    records = company_records(customers, args.keep_real_documents)
    batch = {"records": records}
    if args.grpc is not None:
        batch = {"tenant_id": args.grpc, "table": "company", "records": records}
    json.dump(batch, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
