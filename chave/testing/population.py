"""A national population of citizens, written straight into PostgreSQL with ``COPY``.

``seed(url, count)`` adds ``count`` citizens, each with an active key, a mobile number and an
e-mail address, all with one PIN hash (hashing ten million PINs would take days and measure
nothing: a login verifies one hash whatever the population). Citizen ``n`` (from 0) has

- NIC ``10000000 + n`` (a Citizen Card, Portugal),
- mobile ``+35191`` followed by ``n`` in 7 digits (up to 10 million) — :func:`phone`,
- e-mail ``cidadao<n>@populacao.example.pt`` — :func:`email`,
- a name made of common Portuguese given and family names (:func:`name`), so that searching by
  name finds many people, as it would.

Rows go in with ``COPY … FROM STDIN`` in batches, foreign-key triggers off for the session
(``session_replication_role = replica``: the rows are consistent by construction), and the
identity sequences moved past them. Used by ``bench/scale.py``, ``bench/population.py``, the load
test and the scale-out test. PostgreSQL only.
"""

from __future__ import annotations

import datetime as dt

GIVEN = ["Ana", "Maria", "João", "José", "Francisco", "Beatriz", "Inês", "Rita", "Pedro", "Tiago", "Carlos",
         "Sofia", "Marta", "Rui", "Miguel", "Catarina", "Luís", "Joana", "Paulo", "Teresa", "António", "Helena",
         "Manuel", "Filipa", "Ricardo", "Sara", "Nuno", "Patrícia", "Diogo", "Leonor", "Gonçalo", "Mariana",
         "Duarte", "Carolina", "Rodrigo", "Matilde", "Vasco", "Madalena", "Bruno", "Cláudia"]
FAMILY = ["Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Jesus", "Sousa",
          "Fernandes", "Gonçalves", "Gomes", "Lopes", "Marques", "Alves", "Almeida", "Ribeiro", "Pinto", "Carvalho",
          "Teixeira", "Moreira", "Correia", "Mendes", "Nunes", "Soares", "Vieira", "Monteiro", "Cardoso", "Rocha",
          "Raposo", "Neves", "Coelho", "Cruz", "Cunha", "Pires", "Ramos", "Reis", "Simões", "Antunes"]
NIC_BASE = 10_000_000
BATCH = 100_000


def nic(n: int) -> str:
    return f"{NIC_BASE + n:08d}"


def phone(n: int) -> str:
    return f"+35191{n:07d}"


def email(n: int) -> str:
    return f"cidadao{n}@populacao.example.pt"


def name(n: int) -> tuple[str, str, str]:
    """(full name, given name, family name) of citizen ``n``: 40 × 40 × 40 combinations."""
    given = GIVEN[n % len(GIVEN)]
    middle = FAMILY[(n // len(GIVEN)) % len(FAMILY)]
    family = FAMILY[(n // (len(GIVEN) * len(FAMILY))) % len(FAMILY)]
    return f"{given} {middle} {family}", given, f"{middle} {family}"


def _copy(cursor, table: str, columns: str, lines) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = []
        for line in lines:
            buffer.append(line)
            if len(buffer) >= 10_000:
                copy.write("".join(buffer))
                buffer.clear()
        if buffer:
            copy.write("".join(buffer))


def seed(database_url: str, count: int, *, pin_hash: str, start: int = 0, progress=None) -> None:
    """Add citizens ``start`` … ``start + count - 1`` with ``pin_hash`` (ids after the tables' highest)."""
    import psycopg

    from chave.identity.models import fold_name

    now = dt.datetime.now(dt.timezone.utc).isoformat()
    valid = (dt.date.today() + dt.timedelta(days=5 * 365)).isoformat()
    expiry = (dt.date.today() + dt.timedelta(days=10 * 365)).isoformat()
    with psycopg.connect(database_url, autocommit=False) as connection:
        cursor = connection.cursor()
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        # Ids follow whatever the tables already hold.
        c0, k0, t0 = (cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
                      for table in ("identity_citizen", "identity_key", "identity_contact"))
        for first in range(start, start + count, BATCH):
            last = min(first + BATCH, start + count)
            _copy(cursor, "identity_citizen",
                  "id, doc_type, doc_country, doc_number, full_name, given_name, family_name, birth_date, nif, "
                  "document_expiry, language, created_at, name_key",
                  (f"{c0 + n - start + 1}\tcc\tPT\t{nic(n)}\t{full}\t{given}\t{family}\t"
                   f"{1940 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}\t\t{expiry}\tpt-pt\t{now}\t{fold_name(full)}\n"
                   for n in range(first, last) for full, given, family in [name(n)]))
            _copy(cursor, "identity_key",
                  "id, status, pin_hash, pin_is_temporary, pin_failures, valid_until, created_at, activated_at, "
                  "citizen_id",
                  (f"{k0 + n - start + 1}\tactive\t{pin_hash}\tf\t0\t{valid}\t{now}\t{now}\t{c0 + n - start + 1}\n" for n in range(first, last)))
            _copy(cursor, "identity_contact", "id, kind, value, verified_at, live, created_at, key_id",
                  (f"{t0 + 2 * (n - start) + 1 + kind}\t{('mobile', 'email')[kind]}\t{(phone, email)[kind](n)}\t{now}\tt\t{now}\t{k0 + n - start + 1}\n"
                   for n in range(first, last) for kind in (0, 1)))
            connection.commit()
            if progress:
                progress(last - start)
        for table in ("identity_citizen", "identity_key", "identity_contact"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
        connection.commit()
        for table in ("identity_citizen", "identity_key", "identity_contact"):
            cursor.execute(f"ANALYZE {table}")
        connection.commit()
