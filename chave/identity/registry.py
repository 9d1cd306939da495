"""Where identity data comes from: the civil registry adapter.

An adapter answers :meth:`CivilRegistry.lookup` for a document reference. The default,
:class:`LocalRecords`, reads the local records that the CLI (and later the counter) write after
checking a document; a deployment wires the State's registry by naming its adapter in
``CHAVE_CIVIL_REGISTRY``.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from chave import clock


@dataclass(frozen=True)
class DocumentRef:
    doc_type: str
    doc_country: str
    doc_number: str


@dataclass(frozen=True)
class IdentityRecord:
    doc: DocumentRef
    full_name: str
    given_name: str
    family_name: str
    birth_date: dt.date
    document_expiry: dt.date
    nif: str = ""


class CivilRegistry(abc.ABC):
    @abc.abstractmethod
    def lookup(self, doc: DocumentRef) -> IdentityRecord | None:
        """The identity data the registry holds for ``doc``, or None when it knows no such document."""


class LocalRecords(CivilRegistry):
    """Identity data kept in this database (``CivilRecord``)."""

    def lookup(self, doc: DocumentRef) -> IdentityRecord | None:
        from .models import CivilRecord

        row = CivilRecord.objects.filter(
            doc_type=doc.doc_type, doc_country=doc.doc_country, doc_number=doc.doc_number
        ).first()
        if row is None:
            return None
        return IdentityRecord(
            doc=doc,
            full_name=row.full_name,
            given_name=row.given_name,
            family_name=row.family_name,
            birth_date=row.birth_date,
            document_expiry=row.document_expiry,
            nif=row.nif,
        )

    def store(self, record: IdentityRecord) -> None:
        """Record (or update) what a checked document says."""
        from .models import CivilRecord

        CivilRecord.objects.update_or_create(
            doc_type=record.doc.doc_type,
            doc_country=record.doc.doc_country,
            doc_number=record.doc.doc_number,
            defaults={
                "full_name": record.full_name,
                "given_name": record.given_name,
                "family_name": record.family_name,
                "birth_date": record.birth_date,
                "document_expiry": record.document_expiry,
                "nif": record.nif,
                "recorded_at": clock.now(),
            },
        )


def civil_registry() -> CivilRegistry:
    return import_string(getattr(settings, "CHAVE_CIVIL_REGISTRY", "chave.identity.registry.LocalRecords"))()
