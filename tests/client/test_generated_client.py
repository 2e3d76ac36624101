"""Uses the Python client generated from openapi/lethe.json (openapi-python-client) against
a running `lethe serve`: create a data mapper over a local JSON Lines lake, queue matches,
start a dry-run job, wait for it, read its events and its report. Every response must
parse into the generated model classes. Run by scripts/client-test, which generates the
client, starts the server and passes LETHE_URL, LETHE_TOKEN and LAKE_DIR.
"""

import os
import sys
import time
from pathlib import Path

from lethe_client import AuthenticatedClient
from lethe_client.api.data_mappers import get_data_mapper, put_data_mapper
from lethe_client.api.jobs import get_job, get_job_report, list_job_events, start_job
from lethe_client.api.queue import add_matches, list_queue
from lethe_client.models import (
    AddMatchesRequest,
    DataMapperResponse,
    Format,
    JobReport,
    JobResponse,
    JobStatus,
    NewMatch,
    PathTable,
    PathTableProvider,
    Problem,
    PutDataMapperRequest,
    StartJobRequest,
)


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    client = AuthenticatedClient(base_url=os.environ["LETHE_URL"], token=os.environ["LETHE_TOKEN"])
    lake = Path(os.environ["LAKE_DIR"])
    (lake / "orders/dt=2026-11-01").mkdir(parents=True)
    (lake / "orders/dt=2026-11-02").mkdir(parents=True)
    (lake / "orders/dt=2026-11-01/part-0.json").write_text(
        '{"customer": {"id": 4711}, "email": "jane@example.com"}\n'
        '{"customer": {"id": 1}, "email": "someone@example.com"}\n'
    )
    (lake / "orders/dt=2026-11-02/part-0.json").write_text(
        '{"customer": {"id": 2}, "email": "jane@example.com"}\n'
    )

    # A data mapper over the local lake (the `path` catalog, a named PathTable schema).
    body = PutDataMapperRequest(
        catalog=PathTable(
            provider=PathTableProvider.PATH,
            location=f"file://{lake}/orders",
            partition_keys=["dt"],
        ),
        format_=Format.JSON,
        columns=["customer.id", "email"],
    )
    created = put_data_mapper.sync_detailed("orders", client=client, body=body)
    check(created.status_code == 201, f"create mapper: {created.status_code} {created.content!r}")
    check(isinstance(created.parsed, DataMapperResponse), "mapper response parses")
    mapper = get_data_mapper.sync("orders", client=client)
    check(isinstance(mapper.catalog, PathTable), f"catalog parses as PathTable: {mapper.catalog!r}")
    check(mapper.catalog.partition_keys == ["dt"], "partition keys round-trip")

    # Invalid input: a typed problem document, nothing changed.
    bad = put_data_mapper.sync_detailed(
        "orders", client=client, body=PutDataMapperRequest(catalog=body.catalog, format_=Format.JSON, columns=[])
    )
    check(bad.status_code == 422 and isinstance(bad.parsed, Problem), f"invalid mapper: {bad.status_code}")
    check(any(e.field == "columns" for e in bad.parsed.errors), f"problem names the field: {bad.parsed.errors}")

    # Queue two subjects: an email and a number.
    # Under an Idempotency-Key: the retry (as after a lost answer) adds nothing.
    request = AddMatchesRequest(
        matches=[
            NewMatch(match_id="jane@example.com", reference="CLIENT-1"),
            NewMatch(match_id=4711, data_mappers=["orders"]),
        ]
    )
    added = add_matches.sync_detailed(client=client, body=request, idempotency_key="client-1-erase")
    check(added.status_code == 201, f"add matches: {added.status_code} {added.content!r}")
    retried = add_matches.sync_detailed(client=client, body=request, idempotency_key="client-1-erase")
    check(retried.status_code == 200, f"retried add: {retried.status_code} {retried.content!r}")
    check(
        [m.deletion_queue_item_id for m in retried.parsed.matches]
        == [m.deletion_queue_item_id for m in added.parsed.matches],
        "the retry answers with the first call's items",
    )
    queue = list_queue.sync(client=client)
    check(len(queue.matches) == 2, f"two items queued: {queue}")

    # A dry run, followed until it ends.
    started = start_job.sync_detailed(client=client, body=StartJobRequest(dry_run=True))
    check(started.status_code == 202 and isinstance(started.parsed, JobResponse), f"start job: {started.content!r}")
    job_id = str(started.parsed.job_id)
    deadline = time.monotonic() + 120
    while True:
        job = get_job.sync(job_id, client=client)
        check(isinstance(job, JobResponse), f"job parses: {job!r}")
        if job.status not in (JobStatus.QUEUED, JobStatus.FINDING):
            break
        check(time.monotonic() < deadline, "the dry run ended within two minutes")
        time.sleep(0.2)
    check(job.status == JobStatus.COMPLETED, f"dry run completed: {job.status}")
    check(job.dry_run, "it was a dry run")
    check(job.stats.objects_matched == 2, f"two objects hold matches: {job.stats}")
    check(job.stats.rows_matched == 2, f"jane's two rows match (one also by 4711): {job.stats}")
    check(job.stats.rows_removed == 0, "a dry run removes nothing")
    check(job.settings.find_concurrency >= 1, f"settings snapshot is typed: {job.settings}")

    events = list_job_events.sync(job_id, client=client)
    kinds = [e.kind for e in events.events]
    check(kinds[0] == "job_created" and kinds[-1] == "job_finished", f"events: {kinds}")

    report = get_job_report.sync(job_id, client=client)
    check(isinstance(report, JobReport), f"report parses: {report!r}")
    keys = sorted(o.key.rsplit("/", 2)[-2] + "/" + o.key.rsplit("/", 1)[-1] for o in report.objects)
    check(keys == ["dt=2026-11-01/part-0.json", "dt=2026-11-02/part-0.json"], f"report objects: {keys}")
    check(all(o.status == "found" for o in report.objects), "dry-run objects are found, not written")
    check(report.job.job_id == started.parsed.job_id, "the report names its job")

    # Nothing was erased: files unchanged, queue unchanged.
    check("jane@example.com" in (lake / "orders/dt=2026-11-02/part-0.json").read_text(), "file untouched")
    check(len(list_queue.sync(client=client).matches) == 2, "queue untouched by a dry run")
    print("generated client: ok")


if __name__ == "__main__":
    main()
