"""The host's side of erpsync.v1.CrmSink: erpsync calls this server to deliver each run.

A real CRM writes to its database; this one keeps companies and contacts in memory, keyed
by (tenant_id, external_id), which is all the contract asks for:

* every call must carry `authorization: Bearer <secret>` (the secret erpsync was given
  with Admin.SetTenantSink or `serve --crm-sink-token`), else UNAUTHENTICATED;
* upserts and deletes are idempotent by (tenant_id, external_id), and a version older
  than the one held (RecordVersion.updated_at) is skipped;
* a repeated idempotency_key (erpsync sending a batch again after a lost answer) is
  answered as the first time, without applying anything twice;
* every answer says how many records were `applied` and the `total` the CRM now holds
  for the tenant (erpsync shows it in the run's reconciliation); CountRecords answers the
  totals of both tables.
"""

import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc

import stubs

pb = stubs.crm_sink_pb2


@dataclass
class Held:
    """One record as the CRM holds it."""

    data: dict
    content_hash: str
    updated_at: int  # the ERP's updated_at in microseconds since the epoch; 0 when unknown
    categories: dict = field(default_factory=dict)


def _version(v) -> tuple[str, int]:
    updated = v.updated_at.ToMicroseconds() if v.HasField("updated_at") else 0
    return v.content_hash, updated


class InMemoryCrm:
    """Companies and contacts per (tenant, external_id); safe to call from many threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.tables: dict[str, dict[tuple[str, str], Held]] = {"company": {}, "contact": {}}
        self._answers: dict[tuple[str, str], pb.SinkResponse] = {}

    def count(self, table: str, tenant: str) -> int:
        with self._lock:
            return self._count(table, tenant)

    def _count(self, table: str, tenant: str) -> int:
        return sum(1 for (t, _) in self.tables[table] if t == tenant)

    def get(self, table: str, tenant: str, external_id: str) -> Held | None:
        with self._lock:
            return self.tables[table].get((tenant, external_id))

    def once(self, tenant: str, key: str, table: str, apply) -> tuple[pb.SinkResponse, bool]:
        """Runs `apply()` (which returns how many records it applied) unless `key` was
        applied before; answers the SinkResponse and whether it was a repeat."""
        with self._lock:
            if (tenant, key) in self._answers:
                return self._answers[(tenant, key)], True
            applied = apply()
            answer = pb.SinkResponse(applied=applied, total=self._count(table, tenant))
            self._answers[(tenant, key)] = answer
            return answer, False

    def upsert(self, table: str, tenant: str, external_id: str, data: dict, version) -> bool:
        """Inserts or replaces a record; False (nothing done) for a version already held or
        older than the one held. Call under once()."""
        content_hash, updated = _version(version)
        held = self.tables[table].get((tenant, external_id))
        if held is not None:
            if held.content_hash == content_hash:
                return False  # this very version is held already
            if updated and held.updated_at and updated < held.updated_at:
                return False  # out of order: a newer version is held
        categories = held.categories if held else {}
        self.tables[table][(tenant, external_id)] = Held(data, content_hash, updated, categories)
        return True

    def delete(self, table: str, tenant: str, external_id: str) -> bool:
        """Removes a record; False when it was not held. Call under once()."""
        return self.tables[table].pop((tenant, external_id), None) is not None

    def categorize(self, tenant: str, category) -> bool:
        """Sets a company's ABC class, lifecycle and portfolio. Call under once()."""
        held = self.tables["company"].get((tenant, category.external_id))
        if held is None:
            return False
        held.categories = {
            "abc_class": category.abc_class,
            "lifecycle": category.lifecycle,
            "portfolio": category.portfolio,
            "revenue": category.revenue,
        }
        return True


class CrmSinkService(stubs.crm_sink_pb2_grpc.CrmSinkServicer):
    """The gRPC service over an InMemoryCrm."""

    def __init__(self, crm: InMemoryCrm, secret: str, log):
        self.crm = crm
        self._expected = f"Bearer {secret}"
        self._log = log
        # While set, every call is refused with FAILED_PRECONDITION (a permanent error:
        # erpsync fails the run at once, without retrying), as a CRM in maintenance might.
        self.refusing = threading.Event()

    def _admit(self, context) -> None:
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization") != self._expected:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong sink secret")
        if self.refusing.is_set():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the CRM is in maintenance")

    def _answer(self, method, request, count, table, apply):
        answer, repeat = self.crm.once(request.tenant_id, request.idempotency_key, table, apply)
        note = " (repeated key: answered as before)" if repeat else ""
        self._log(
            f"  sink: {method} {count} record(s), key {request.idempotency_key[:8]}… → "
            f"applied {answer.applied}, total {answer.total}{note}"
        )
        return answer

    def UpsertCompanies(self, request, context):
        self._admit(context)
        t = request.tenant_id

        def apply():
            return sum(
                self.crm.upsert(
                    "company",
                    t,
                    c.external_id,
                    {"name": c.name, "document": c.document, "seller_id": c.seller_id,
                     "city": c.city, "state": c.state, "email": c.email, "phone": c.phone},
                    c.version,
                )
                for c in request.companies
            )

        return self._answer("UpsertCompanies", request, len(request.companies), "company", apply)

    def UpsertContacts(self, request, context):
        self._admit(context)
        t = request.tenant_id

        def apply():
            return sum(
                self.crm.upsert(
                    "contact",
                    t,
                    c.external_id,
                    {"name": c.name, "document": c.document, "company_id": c.company_id,
                     "email": c.email, "phone": c.phone},
                    c.version,
                )
                for c in request.contacts
            )

        return self._answer("UpsertContacts", request, len(request.contacts), "contact", apply)

    def _delete(self, method, table, request, context):
        self._admit(context)

        def apply():
            return sum(self.crm.delete(table, request.tenant_id, i) for i in request.external_ids)

        return self._answer(method, request, len(request.external_ids), table, apply)

    def DeleteCompanies(self, request, context):
        return self._delete("DeleteCompanies", "company", request, context)

    def DeleteContacts(self, request, context):
        return self._delete("DeleteContacts", "contact", request, context)

    def ApplyCategories(self, request, context):
        self._admit(context)

        def apply():
            return sum(self.crm.categorize(request.tenant_id, c) for c in request.categories)

        return self._answer(
            "ApplyCategories", request, len(request.categories), "company", apply
        )

    def CountRecords(self, request, context):
        self._admit(context)
        return pb.CountRecordsResponse(
            companies=self.crm.count("company", request.tenant_id),
            contacts=self.crm.count("contact", request.tenant_id),
        )


def serve(service: CrmSinkService, host: str, port: int = 0) -> tuple[grpc.Server, int]:
    """Starts the sink on host:port (0: a free port); answers the server and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    stubs.crm_sink_pb2_grpc.add_CrmSinkServicer_to_server(service, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"cannot listen on {host}:{port}")
    server.start()
    return server, bound
