#!/usr/bin/env python3
"""A host CRM's backend driving erpsync end to end, as a host team would code it.

It starts its own CrmSink, provisions a tenant through Admin (tenant, tokens, the tenant's
sink, its schedule), pushes ERP data over HTTP and gRPC, runs a sync and reads what the
"Dados ERP" page shows, watches an alert open and resolve, decodes an INVALID_ARGUMENT's
field violations, and deletes the tenant, through erpsync's public API alone. Each step
prints what it did; any expectation that does not hold stops it with exit status 1 and
says which.

    python3 host_example.py --address 127.0.0.1:50051 --admin-token esk_…

Settings come from flags or the environment (see --help).
"""

import argparse
import datetime as dt
import json
import os
import queue
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
from google.protobuf import struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

import crm_sink
import stubs

admin_pb2, ih_pb2, ingest_pb2 = stubs.admin_pb2, stubs.integration_history_pb2, stubs.erp_ingest_pb2

RUN_TIMEOUT_S = 180  # a run of a few records takes well under a second
EVENT_TIMEOUT_S = 60


class Failed(Exception):
    """An expectation that did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


_print_lock = threading.Lock()


def say(text: str = "") -> None:
    with _print_lock:
        print(text, flush=True)


def step(title: str) -> None:
    say(f"\n== {title} ==")


def enum_name(enum, value: int) -> str:
    """HEALTH_NEVER_RUN → NEVER_RUN (values carry their enum's prefix)."""
    name = enum.Name(value)
    prefix = "".join(f"_{c}" if c.isupper() else c for c in enum.DESCRIPTOR.name).lstrip("_")
    return name.removeprefix(prefix.upper() + "_")


# --- sample ERP data ------------------------------------------------------------------


def cnpj(base12: str) -> str:
    """A valid CNPJ: 12 digits and their 2 check digits."""
    digits = [int(c) for c in base12]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        rest = sum(d * w for d, w in zip(digits, weights)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, digits))


def cpf(base9: str) -> str:
    """A valid CPF: 9 digits and their 2 check digits."""
    digits = [int(c) for c in base9]
    for n in (10, 11):
        digits.append(sum(d * w for d, w in zip(digits, range(n, 1, -1))) * 10 % 11 % 10)
    return "".join(map(str, digits))


def days_ago(n: int) -> str:
    return (dt.date.today() - dt.timedelta(days=n)).isoformat()


NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

COMPANIES_HTTP = [
    {"external_id": "c-001", "updated_at": NOW.isoformat(),
     "fields": {"name": "Padaria Estrela Ltda", "document": cnpj("112223330001"),
                "seller_id": "s-01", "city": "São Paulo", "state": "SP",
                "email": "compras@estrela.example", "phone": "+55 11 3000-0001"}},
    {"external_id": "c-002", "updated_at": NOW.isoformat(),
     "fields": {"name": "Metalúrgica Horizonte S.A.", "document": cnpj("452879150001"),
                "seller_id": "s-02", "city": "Belo Horizonte", "state": "MG"}},
    # Refused on its own (the CNPJ's check digits are wrong); the others are kept.
    {"external_id": "c-bad", "fields": {"name": "Dígito Errado ME", "document": "11222333000199"}},
]
COMPANIES_GRPC = [
    {"external_id": "c-003", "updated_at": NOW,
     "fields": {"name": "Farmácia Boa Saúde Ltda", "document": cnpj("084217360001"),
                "city": "Curitiba", "state": "PR"}},
]
CONTACTS_HTTP = [
    {"external_id": "p-001",
     "fields": {"name": "Ana Souza", "document": cpf("529982247"), "company_id": "c-001",
                "email": "ana@estrela.example"}},
]
CONTACTS_GRPC = [
    {"external_id": "p-002", "updated_at": NOW,
     "fields": {"name": "Bruno Lima", "company_id": "c-002", "phone": "+55 31 9000-0002"}},
]
INVOICES_HTTP = [
    {"external_id": "nf-1001", "fields": {"company_id": "c-001", "issued_at": days_ago(20),
                                          "total": "12500.00", "number": "1001"}},
    {"external_id": "nf-1002", "fields": {"company_id": "c-001", "issued_at": days_ago(50),
                                          "total": "7500.00", "number": "1002"}},
]
INVOICES_GRPC = [
    {"external_id": "nf-1003", "fields": {"company_id": "c-002", "issued_at": days_ago(35),
                                          "total": "3200.50", "number": "1003"}},
    {"external_id": "nf-1004", "fields": {"company_id": "c-003", "issued_at": days_ago(400),
                                          "total": "800.00", "number": "1004"}},
]
PUSHED = {"company": 3, "contact": 2, "invoice": 4}  # accepted records per table


# --- talking to erpsync ---------------------------------------------------------------


class Erpsync:
    """The erpsync port: gRPC stubs and the HTTP ingestion route, with the tokens to use."""

    def __init__(self, address: str):
        self.address = address
        # Plaintext to a local sidecar; across a network use grpc.secure_channel and https.
        # HTTP proxies from the environment are not for a sidecar on the same host.
        self.channel = grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.admin = stubs.admin_pb2_grpc.AdminStub(self.channel)
        self.history = stubs.integration_history_pb2_grpc.IntegrationHistoryStub(self.channel)
        self.ingest = stubs.erp_ingest_pb2_grpc.ErpIngestStub(self.channel)
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @staticmethod
    def auth(token: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {token}")]

    def http_push(self, token: str, table: str, records: list[dict]) -> tuple[int, dict]:
        """POST /erp/v1/{table} {"records": [...]}; answers the status and the JSON body."""
        request = urllib.request.Request(
            f"http://{self.address}/erp/v1/{table}",
            data=json.dumps({"records": records}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self._http.open(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read() or b"{}")

    def grpc_push(self, token: str, tenant: str, table: str, records: list[dict]):
        """ErpIngest.Push of the same records, as protobuf messages."""
        messages = []
        for r in records:
            fields = struct_pb2.Struct()
            fields.update(r["fields"])
            record = ingest_pb2.Record(external_id=r["external_id"], fields=fields)
            if "updated_at" in r:
                stamp = timestamp_pb2.Timestamp()
                stamp.FromDatetime(r["updated_at"])
                record.updated_at.CopyFrom(stamp)
            messages.append(record)
        return self.ingest.Push(
            ingest_pb2.PushRequest(tenant_id=tenant, table=table, records=messages),
            metadata=self.auth(token),
        )


def bad_request(error: grpc.RpcError) -> error_details_pb2.BadRequest | None:
    """The google.rpc.BadRequest in an error's `grpc-status-details-bin` trailer, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    found = error_details_pb2.BadRequest()
                    detail.Unpack(found)
                    return found
    return None


def expect_code(call, code: grpc.StatusCode, what: str) -> grpc.RpcError:
    """Runs call(), which must fail with `code`; answers its error."""
    try:
        call()
    except grpc.RpcError as error:
        expect(error.code() == code, f"{what}: expected {code.name}, got "
                                     f"{error.code().name}: {error.details()}")
        return error
    raise Failed(f"{what}: expected {code.name}, but the call succeeded")


class AlertWatch:
    """A WatchAlerts stream read on a thread of its own; next() waits for its next event."""

    def __init__(self, call):
        self._call = call
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for event in self._call:
                self._events.put(event)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self._events.put(error)

    def next(self, timeout: float = EVENT_TIMEOUT_S):
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            raise Failed(f"no alert event within {timeout} s") from None
        if isinstance(event, grpc.RpcError):
            raise Failed(f"WatchAlerts ended: {event.code().name}: {event.details()}")
        return event

    def close(self):
        self._call.cancel()


def show_event(label: str, event) -> None:
    say(f"{label}: {enum_name(ih_pb2.AlertEventKind, event.kind)} "
        f"{enum_name(ih_pb2.AlertKind, event.alert.kind)} on {event.tenant_id} "
        f"(run {event.alert.run_id}): {event.alert.message!r} — cursor {event.cursor!r}")


# --- the host program -----------------------------------------------------------------


class Host:
    def __init__(self, args):
        self.args = args
        self.tenant = args.tenant
        self.erp = Erpsync(args.address)
        self.admin_md = Erpsync.auth(args.admin_token) if args.admin_token else None
        self.crm_token = self.erp_token = None  # issued through Admin in step 2
        self.crm = crm_sink.InMemoryCrm()
        self.sink = crm_sink.CrmSinkService(self.crm, args.sink_secret, say)
        self.sink_server = None
        self.sink_port = None
        self.watch = None

    @property
    def crm_md(self):
        return Erpsync.auth(self.crm_token)

    def admin_call(self, method: str, request):
        """An Admin call with our admin token."""
        return getattr(self.erp.admin, method)(request, metadata=self.admin_md)

    # 1
    def start_sink(self):
        step("1. connect and start our CrmSink")
        self.sink_server, self.sink_port = crm_sink.serve(
            self.sink, self.args.sink_listen, self.args.sink_port)
        say(f"erpsync at {self.args.address} answers; our CrmSink listens on port "
            f"{self.sink_port} and wants 'authorization: Bearer <secret>'")

    # 2
    def provision(self):
        step("2. provision the tenant through Admin")
        t = self.admin_call("CreateTenant", admin_pb2.CreateTenantRequest(
            tenant_id=self.tenant, name="Exemplo Python Ltda", erp_name="Protheus",
            erp_version="12.1.2310", business_rule="companies and contacts; invoices feed ABC"))
        expect(t.tenant_id == self.tenant, f"CreateTenant answered tenant {t.tenant_id!r}")
        say(f"CreateTenant {t.tenant_id}: {t.name!r}, {t.timezone}, "
            f"{enum_name(ih_pb2.IntegrationType, t.integration_type)}, "
            f"health {enum_name(ih_pb2.Health, t.health)}")

        issued = {}
        for role, label in ((admin_pb2.TOKEN_ROLE_ERP, "erp: Protheus middleware"),
                            (admin_pb2.TOKEN_ROLE_CRM, "crm: Dados ERP page")):
            answer = self.admin_call("IssueToken", admin_pb2.IssueTokenRequest(
                role=role, tenant_ids=[self.tenant], label=label))
            expect(answer.secret.startswith("esk_"), "IssueToken answered no esk_ secret")
            issued[role] = answer
            say(f"IssueToken {enum_name(admin_pb2.TokenRole, role)}: {answer.token.token_id} "
                f"{label!r} (secret shown once, kept by the host)")
        self.erp_token = issued[admin_pb2.TOKEN_ROLE_ERP].secret
        self.crm_token = issued[admin_pb2.TOKEN_ROLE_CRM].secret

        address = f"grpc://{self.args.sink_host}:{self.sink_port}"
        sink = self.admin_call("SetTenantSink", admin_pb2.SetTenantSinkRequest(
            tenant_id=self.tenant, address=address, secret=self.args.sink_secret))
        # (Compared by port: the server may write the address in its own canonical form.)
        expect(str(self.sink_port) in sink.address and sink.has_secret,
               f"SetTenantSink answered {sink.address!r}, has_secret={sink.has_secret}")
        say(f"SetTenantSink {sink.address} with its secret (has_secret={sink.has_secret})")

        updated = self.admin_call("UpdateTenant", admin_pb2.UpdateTenantRequest(
            tenant_id=self.tenant,
            settings=ih_pb2.UpdateSettingsRequest(
                deployment_status=ih_pb2.DEPLOYMENT_STATUS_IN_PROGRESS),
            # The schedule is saved with scheduling off: here runs start only on TriggerSync
            # (a host turns it on with scheduled=True, or by leaving `scheduled` unset).
            schedule=ih_pb2.UpdateScheduleRequest(
                schedule=ih_pb2.Schedule(daily_times=["03:00", "13:30"]), scheduled=False)))
        expect(list(updated.schedule.daily_times) == ["03:00", "13:30"] and not updated.scheduled,
               f"UpdateTenant left the schedule {updated.schedule}, scheduled={updated.scheduled}")
        say(f"UpdateTenant: schedule {list(updated.schedule.daily_times)}, scheduled "
            f"{updated.scheduled}, {enum_name(ih_pb2.DeploymentStatus, updated.deployment_status)}")

        got = self.admin_call("GetTenant", admin_pb2.GetTenantRequest(tenant_id=self.tenant))
        expect(str(self.sink_port) in got.crm_sink, f"GetTenant shows the sink {got.crm_sink!r}")
        expect(got.deployment_status == ih_pb2.DEPLOYMENT_STATUS_IN_PROGRESS,
               "GetTenant does not show the new deployment status")
        say(f"GetTenant: sink {got.crm_sink}, schedule {list(got.schedule.daily_times)}, "
            f"active {got.active}")

        tokens = self.admin_call("ListTokens", admin_pb2.ListTokensRequest(tenant_id=self.tenant))
        labels = {tok.label for tok in tokens.tokens}
        expect({"erp: Protheus middleware", "crm: Dados ERP page"} <= labels,
               f"ListTokens misses our tokens: {sorted(labels)}")
        for tok in tokens.tokens:
            say(f"ListTokens: {tok.token_id} {enum_name(admin_pb2.TokenRole, tok.role)} "
                f"{list(tok.tenant_ids) or 'all tenants'} {tok.label!r}")

    # 3
    def list_tables(self):
        step("3. the table catalog (ListTables)")
        tables = {t.id: t for t in self.erp.history.ListTables(
            ih_pb2.ListTablesRequest(), metadata=self.crm_md).tables}
        samples = {"company": COMPANIES_HTTP + COMPANIES_GRPC,
                   "contact": CONTACTS_HTTP + CONTACTS_GRPC,
                   "invoice": INVOICES_HTTP + INVOICES_GRPC}
        for table, records in samples.items():
            expect(table in tables, f"ListTables has no {table} table")
            required = list(tables[table].required_fields)
            say(f"{table} ({tables[table].label}): required {required}")
            for r in records:
                missing = [f for f in required if f not in r["fields"]]
                expect(not missing, f"sample {table} {r['external_id']} lacks {missing}")

    # 4
    def push(self):
        step("4. push ERP data (HTTP and gRPC)")
        status, body = self.erp.http_push(self.erp_token, "company", COMPANIES_HTTP)
        expect(status == 200, f"POST /erp/v1/company answered {status}: {body}")
        expect(body["accepted"] == 2 and len(body["rejected"]) == 1,
               f"POST /erp/v1/company: expected 2 accepted and c-bad rejected: {body}")
        say(f"POST /erp/v1/company: accepted {body['accepted']}, request {body['request_id']}")
        for r in body["rejected"]:
            say(f"  rejected #{r['index']} {r['external_id']}: {r['field']}: {r['reason']}")
        expect(body["rejected"][0]["external_id"] == "c-bad", "the wrong company was rejected")

        for table, http_records, grpc_records in (
                ("company", [], COMPANIES_GRPC),
                ("contact", CONTACTS_HTTP, CONTACTS_GRPC),
                ("invoice", INVOICES_HTTP, INVOICES_GRPC)):
            if http_records:
                status, body = self.erp.http_push(self.erp_token, table, http_records)
                expect(status == 200 and body["accepted"] == len(http_records),
                       f"POST /erp/v1/{table} answered {status}: {body}")
                say(f"POST /erp/v1/{table}: accepted {body['accepted']}, "
                    f"request {body['request_id']}")
            answer = self.erp.grpc_push(self.erp_token, self.tenant, table, grpc_records)
            expect(answer.accepted == len(grpc_records) and not answer.rejected,
                   f"ErpIngest.Push {table}: {answer}")
            say(f"ErpIngest.Push {table}: accepted {answer.accepted}, request {answer.request_id}")

        self.erp.ingest.ReportCounts(
            ingest_pb2.ReportCountsRequest(tenant_id=self.tenant, counts=PUSHED),
            metadata=Erpsync.auth(self.erp_token))
        say(f"ErpIngest.ReportCounts: {PUSHED}")

    def run_sync(self, what: str):
        """TriggerSync, then GetRun until the run is no longer RUNNING; answers the run."""
        answer = self.erp.history.TriggerSync(
            ih_pb2.TriggerSyncRequest(tenant_id=self.tenant), metadata=self.crm_md)
        run_id = answer.run.run_id
        note = " (one was already running: following it)" if answer.already_running else ""
        say(f"TriggerSync ({what}): run {run_id}{note}")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            got = self.erp.history.GetRun(
                ih_pb2.GetRunRequest(tenant_id=self.tenant, run_id=run_id), metadata=self.crm_md)
            if got.run.status != ih_pb2.RUN_STATUS_RUNNING:
                break
            expect(time.monotonic() < deadline, f"run {run_id} still RUNNING after "
                                                f"{RUN_TIMEOUT_S} s")
            time.sleep(0.2)
        run = got.run
        stages = " → ".join(s.stage for s in run.stages)
        say(f"GetRun {run_id}: {enum_name(ih_pb2.RunStatus, run.status)} "
            f"({enum_name(ih_pb2.RunTrigger, run.trigger)}) in "
            f"{run.duration.ToMilliseconds()} ms; stages: {stages}")
        for error in run.errors:
            say(f"  error: {error}")
        return run

    # 5
    def sync_and_read(self):
        step("5. sync and read what the Dados ERP page shows")
        run = self.run_sync("first run")
        expect(run.status == ih_pb2.RUN_STATUS_SUCCESS,
               f"the first run ended {enum_name(ih_pb2.RunStatus, run.status)}: "
               f"{list(run.errors)}")

        log = self.erp.history.StreamLogs(ih_pb2.StreamLogsRequest(
            tenant_id=self.tenant, run_id=run.run_id, min_level=ih_pb2.LOG_LEVEL_INFO),
            metadata=self.crm_md)
        lines = [e for e in log if not e.heartbeat]
        say(f"StreamLogs of the run: {len(lines)} events at INFO or above, e.g.")
        for e in lines[:4] + lines[-2:]:
            say(f"  #{e.cursor} {enum_name(ih_pb2.LogLevel, e.level)} {e.stage}: {e.message}")

        for table in ("company", "contact"):
            sent = PUSHED[table]
            held = self.crm.count(table, self.tenant)
            expect(held == sent, f"our sink holds {held} {table} records, {sent} were pushed")
        c001 = self.crm.get("company", self.tenant, "c-001")
        expect(c001 is not None and c001.data["name"] == "Padaria Estrela Ltda",
               f"our sink holds c-001 as {c001}")
        say(f"our sink holds {self.crm.count('company', self.tenant)} companies and "
            f"{self.crm.count('contact', self.tenant)} contacts; c-001 is "
            f"{c001.categories.get('abc_class') or 'unclassified'} / "
            f"{c001.categories.get('lifecycle')}")

        ov = self.erp.history.GetOverview(
            ih_pb2.GetOverviewRequest(tenant_id=self.tenant), metadata=self.crm_md)
        say(f"GetOverview: {ov.tenant_name!r}, health {enum_name(ih_pb2.Health, ov.health)}, "
            f"next run {ov.next_run_local or 'none'}, {ov.db_size_bytes} bytes, "
            f"{len(ov.open_alerts)} open alert(s)")
        if "crm_sink" in ov.DESCRIPTOR.fields_by_name:
            say(f"GetOverview: delivers to {getattr(ov, 'crm_sink') or 'the server default'}")
        expect(ov.health == ih_pb2.HEALTH_HEALTHY, "the overview is not HEALTHY")
        counts = {t.table: t for t in ov.tables}
        for table, sent in PUSHED.items():
            row = counts.get(table)
            expect(row is not None, f"the overview has no {table} row")
            crm = self.crm.count(table, self.tenant) if table in ("company", "contact") else 0
            say(f"  {table}: erp {row.erp_count}, staged {row.staged_count}, "
                f"crm {row.crm_count}, inserted {row.inserted}")
            expect(row.erp_count == sent and row.staged_count == sent and row.crm_count == crm,
                   f"the overview's {table} counts (erp {row.erp_count}, staged "
                   f"{row.staged_count}, crm {row.crm_count}) differ from ours "
                   f"({sent} pushed, {crm} in our sink)")

        runs = self.erp.history.ListRuns(
            ih_pb2.ListRunsRequest(tenant_id=self.tenant, page_size=5), metadata=self.crm_md)
        expect(runs.runs and runs.runs[0].run_id == run.run_id,
               "ListRuns does not start with our run")
        say(f"ListRuns: {[(r.run_id, enum_name(ih_pb2.RunStatus, r.status)) for r in runs.runs]}")

        abc = self.erp.history.GetAbcReport(
            ih_pb2.GetAbcReportRequest(tenant_id=self.tenant), metadata=self.crm_md)
        expect(abc.run_id == run.run_id, f"the ABC report is of run {abc.run_id!r}")
        say(f"GetAbcReport: basis {abc.basis}, window {abc.window_from}..{abc.window_to}, "
            f"{abc.companies} companies ({abc.companies_without_class} without class)")
        for c in abc.classes:
            say(f"  class {enum_name(ih_pb2.AbcClass, c.abc_class)}: {c.companies} "
                f"companies, revenue {c.revenue} ({c.revenue_share}%)")
        expect(c001.categories.get("abc_class") == "A",
               f"c-001 (the largest revenue) is class {c001.categories.get('abc_class')!r}")

    # 6
    def alert(self):
        step("6. an alert opens and resolves")
        self.watch = AlertWatch(self.erp.admin.WatchAlerts(
            admin_pb2.WatchAlertsRequest(tenant_ids=[self.tenant]), metadata=self.admin_md))
        say("Admin.WatchAlerts opened for our tenant")
        # A change to deliver, so that the next run calls the sink.
        changed = dict(COMPANIES_HTTP[0], updated_at=(NOW + dt.timedelta(minutes=1)).isoformat())
        changed["fields"] = dict(changed["fields"], phone="+55 11 3000-0999")
        status, body = self.erp.http_push(self.erp_token, "company", [changed])
        expect(status == 200 and body["accepted"] == 1, f"the update of c-001: {status} {body}")
        say("c-001's phone changed in the ERP and was pushed")

        self.sink.refusing.set()
        say("our sink now refuses every call (FAILED_PRECONDITION: in maintenance)")
        failed = self.run_sync("sink refusing")
        expect(failed.status == ih_pb2.RUN_STATUS_FAILED,
               f"the run ended {enum_name(ih_pb2.RunStatus, failed.status)}, not FAILED")
        opened = self.next_alert(ih_pb2.ALERT_EVENT_KIND_OPENED)

        self.sink.refusing.clear()
        say("our sink accepts calls again")
        healed = self.run_sync("sink back")
        expect(healed.status == ih_pb2.RUN_STATUS_SUCCESS,
               f"the run ended {enum_name(ih_pb2.RunStatus, healed.status)}, not SUCCESS")
        resolved = self.next_alert(ih_pb2.ALERT_EVENT_KIND_RESOLVED)
        phone = self.crm.get("company", self.tenant, "c-001").data["phone"]
        expect(phone == "+55 11 3000-0999", f"our sink holds c-001's phone as {phone!r}")
        say(f"our sink now has c-001's new phone {phone}")

        if self.watch is not None:
            self.watch.close()
            expect(opened.alert.alert_id == resolved.alert.alert_id,
                   "the RESOLVED event is of another alert")
            # Resuming after the OPENED event's cursor delivers the RESOLVED one next.
            resumed = AlertWatch(self.erp.admin.WatchAlerts(admin_pb2.WatchAlertsRequest(
                tenant_ids=[self.tenant], after_cursor=opened.cursor), metadata=self.admin_md))
            again = resumed.next()
            resumed.close()
            expect(again.cursor == resolved.cursor and
                   again.kind == ih_pb2.ALERT_EVENT_KIND_RESOLVED,
                   f"resuming after {opened.cursor!r} gave {again}")
            say(f"WatchAlerts resumed after {opened.cursor!r}: next is {again.cursor!r} "
                f"(the RESOLVED event, nothing lost or repeated)")

    def next_alert(self, kind):
        """The next FAILING alert event of `kind` from WatchAlerts."""
        while True:
            event = self.watch.next()
            show_event("WatchAlerts", event)
            if event.alert.kind == ih_pb2.ALERT_KIND_FAILING:
                expect(event.kind == kind, f"expected a {ih_pb2.AlertEventKind.Name(kind)} "
                                           f"event, got {event}")
                return event

    # 7
    def invalid_argument(self):
        step("7. an invalid request and its field violations")
        bad = ih_pb2.Schedule(cron="61 25 * * *")
        what = "Admin.UpdateTenant"

        def call():
            self.erp.admin.UpdateTenant(admin_pb2.UpdateTenantRequest(
                tenant_id=self.tenant, schedule=ih_pb2.UpdateScheduleRequest(schedule=bad)),
                metadata=self.admin_md)
        error = expect_code(call, grpc.StatusCode.INVALID_ARGUMENT,
                            f"{what} with cron {bad.cron!r}")
        say(f"{what} with cron {bad.cron!r}: INVALID_ARGUMENT: {error.details()}")
        details = bad_request(error)
        expect(details is not None and details.field_violations,
               "no google.rpc.BadRequest in the grpc-status-details-bin trailer")
        for v in details.field_violations:
            say(f"  field {v.field!r}: {v.description}")
        expect(any("cron" in v.field for v in details.field_violations),
               "no violation names the cron field")

    # 8
    def delete(self):
        step("8. delete the tenant")
        answer = self.admin_call("DeleteTenant",
                                 admin_pb2.DeleteTenantRequest(tenant_id=self.tenant))
        expect(answer.deleted, "DeleteTenant answered deleted=false")
        say(f"DeleteTenant {self.tenant}: deleted, {answer.rows_deleted} rows removed")
        expect_code(lambda: self.erp.admin.GetTenant(
            admin_pb2.GetTenantRequest(tenant_id=self.tenant), metadata=self.admin_md),
            grpc.StatusCode.NOT_FOUND, "GetTenant after DeleteTenant")
        say("GetTenant: NOT_FOUND")
        status, body = self.erp.http_push(self.erp_token, "company", COMPANIES_HTTP[:1])
        expect(status == 401, f"the deleted tenant's erp token got {status}: {body}")
        say(f"POST /erp/v1/company with its erp token: {status} "
            f"{body.get('error', {}).get('code')}")
        expect_code(lambda: self.erp.grpc_push(self.erp_token, self.tenant, "company",
                                               COMPANIES_GRPC),
                    grpc.StatusCode.UNAUTHENTICATED, "ErpIngest.Push after DeleteTenant")
        say("ErpIngest.Push with its erp token: UNAUTHENTICATED")
        again = self.admin_call("DeleteTenant",
                                admin_pb2.DeleteTenantRequest(tenant_id=self.tenant))
        expect(not again.deleted, "a second DeleteTenant answered deleted=true")
        say("DeleteTenant again: deleted=false (idempotent)")

    def run(self):
        try:
            self.start_sink()
            self.provision()
            self.list_tables()
            self.push()
            self.sync_and_read()
            self.alert()
            self.invalid_argument()
            self.delete()
        finally:
            if self.watch is not None:
                self.watch.close()
            if self.sink_server is not None:
                self.sink_server.stop(grace=None)


def parse_args(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default=env("ERPSYNC_ADDRESS", "127.0.0.1:50051"),
                   help="erpsync's host:port (ERPSYNC_ADDRESS)")
    p.add_argument("--admin-token", default=env("ERPSYNC_ADMIN_TOKEN"),
                   help="an admin token: `erpsync token issue --role admin` "
                        "(ERPSYNC_ADMIN_TOKEN)")
    p.add_argument("--tenant", default=env("ERPSYNC_TENANT"),
                   help="the tenant id (ERPSYNC_TENANT; default: a new pyhost-… id)")
    p.add_argument("--sink-listen", default="127.0.0.1",
                   help="the address our CrmSink listens on (default 127.0.0.1)")
    p.add_argument("--sink-host", default="127.0.0.1",
                   help="the host erpsync reaches our CrmSink at (default 127.0.0.1)")
    p.add_argument("--sink-port", type=int, default=int(env("ERPSYNC_SINK_PORT", "0")),
                   help="our CrmSink's port (ERPSYNC_SINK_PORT; default: a free one)")
    p.add_argument("--sink-secret", default=env("ERPSYNC_SINK_SECRET"),
                   help="the secret our sink wants (ERPSYNC_SINK_SECRET; default: a new one)")
    args = p.parse_args(argv)
    if not args.admin_token:
        p.error("an admin token is needed: --admin-token or ERPSYNC_ADMIN_TOKEN")
    args.tenant = args.tenant or f"pyhost-{secrets.token_hex(3)}"
    args.sink_secret = args.sink_secret or secrets.token_urlsafe(24)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        Host(args).run()
    except Failed as failure:
        say(f"\nFAILED: {failure}")
        return 1
    except grpc.RpcError as error:
        say(f"\nFAILED: erpsync answered {error.code().name}: {error.details()}")
        return 1
    except grpc.FutureTimeoutError:
        say(f"\nFAILED: erpsync at {args.address} did not answer within 30 s")
        return 1
    say("\nOK: every step did what the contract says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
