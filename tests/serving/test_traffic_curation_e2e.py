"""Traffic to a curated dataset on the real serving stack: full capture turned on through the
registry, chat requests through the gateway (one streamed, e-mail addresses in some prompts),
ratings and corrections through the gateway's POST /v1/feedback, then
POST /v1/tenants/acme/datasets/from-traffic: exactly the served answers and corrections
expected, redacted, with the `traffic` summary and the dataset's lineage node. Another tenant can
neither rate nor curate these traces."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from registry.models import AdapterVersionDataset, TrafficSample
from tests.serving.conftest import Adapters
from tests.serving.stack import ServingStack

CAPTURE = "/v1/tenants/acme/adapters/orders/traffic-capture"
CURATE = "/v1/tenants/{tenant}/datasets/from-traffic"
MAX_TOKENS = 12


def _db(serving: ServingStack) -> Session:
    return Session(create_engine(serving.live.env["LORAPLEX_DATABASE_URL"]))


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _chat(serving: ServingStack, prompt: str, request_id: str, stream: bool) -> tuple[str, str]:
    """The served answer's text and finish reason, as the client saw them."""
    client = serving.openai("acme")
    kwargs: dict[str, Any] = {
        "model": "orders",
        "messages": [user(prompt)],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "extra_headers": {"x-request-id": request_id},
    }
    if not stream:
        done = client.chat.completions.create(**kwargs)
        return done.choices[0].message.content or "", str(done.choices[0].finish_reason)
    text, finish = "", ""
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def _feedback(serving: ServingStack, tenant: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{serving.gateway_url}/v1/feedback",
        json=body,
        headers=serving.tokens[tenant],
        timeout=30,
        trust_env=False,
    )


def _wait_for_traces(serving: ServingStack, request_ids: list[str]) -> None:
    deadline = time.monotonic() + 15
    while True:
        with _db(serving) as s:
            found = [
                str(r)
                for r in s.scalars(
                    select(TrafficSample.request_id).where(
                        TrafficSample.request_id.in_(request_ids),
                        TrafficSample.object_key.is_not(None),
                    )
                )
            ]
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            assert sorted(found) == sorted(request_ids), serving.gateway_log()[-3000:]
            return
        time.sleep(0.2)


def test_traffic_becomes_a_curated_dataset(serving: ServingStack, adapters: Adapters) -> None:
    acme, globex = serving.tokens["acme"], serving.tokens["globex"]
    serving.ok(
        serving.http.put(
            CAPTURE, json={"mode": "full", "sample_rate": 1.0, "retention": "7d"}, headers=acme
        )
    )
    run = uuid.uuid4().hex[:8]
    lineage_adapter = f"curated{run}"
    try:
        time.sleep(1.5)  # the gateway reloads capture settings with the route (resolve TTL)
        since = dt.datetime.now(dt.UTC)
        ids = [f"cur-{run}-{i}" for i in range(5)]
        prompts = [
            "Please email jane.doe@example.com about order 12",
            "Where is order 13?",
            "Cancel order 14",
            "Status of order 15?",
            "Refund order 16 and write to bob@example.org",
        ]
        served = [
            _chat(serving, p, rid, stream=i == 4)
            for i, (p, rid) in enumerate(zip(prompts, ids, strict=True))
        ]
        fixed13 = [assistant("Order 13 ships on Monday.")]
        fixed16 = [assistant("Refunded; the receipt went to bob@example.org.")]
        feedback = [
            {"request_id": ids[0], "rating": 1},
            {"request_id": ids[1], "rating": -1, "correction": fixed13},
            {"request_id": ids[2], "rating": -1, "comment": "wrong order"},
            {"request_id": ids[4], "rating": 0, "correction": fixed16},
        ]
        for body in feedback:
            resp = _feedback(serving, "acme", body)
            assert resp.status_code == 201, resp.text
        # Another tenant's request ids are unknown to globex: it cannot rate them.
        resp = _feedback(serving, "globex", {"request_id": ids[3], "rating": 1})
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == "request_not_found"
        _wait_for_traces(serving, ids)

        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        window = {"since": since.isoformat(), "until": until.isoformat()}
        resp = serving.http.post(
            CURATE.format(tenant="acme"),
            json={"name": f"orders-curated-{run}", "adapter": "orders", **window},
            headers=acme,
        )
        assert resp.status_code == 201, resp.text
        dataset = resp.json()

        # What each request must become: the approved answer (kept even if cut at
        # max_tokens), the correction, nothing (rated -1, uncorrected), the unrated answer
        # unless it was cut, the redacted correction.
        expected = [
            {"messages": [user("Please email [REDACTED:EMAIL] about order 12"),
                          assistant(served[0][0])]},
            {"messages": [user(prompts[1]), *fixed13]},
        ]  # fmt: skip
        skipped = {"rejected": 1}
        if served[3][1] == "length":
            skipped["truncated"] = 1
        else:
            expected.append({"messages": [user(prompts[3]), assistant(served[3][0])]})
        expected.append(
            {
                "messages": [
                    user("Refund order 16 and write to [REDACTED:EMAIL]"),
                    assistant("Refunded; the receipt went to [REDACTED:EMAIL]."),
                ]
            }
        )
        content = serving.http.get(
            f"/v1/tenants/acme/datasets/{dataset['id']}/content", headers=acme
        )
        assert content.status_code == 200, content.text
        rows = [json.loads(line) for line in content.text.splitlines()]
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(rows, key=key) == sorted(expected, key=key)
        assert "example.com" not in content.text and "example.org" not in content.text
        t = dataset["traffic"]
        assert t["matched"] == 5 and t["rows"] == len(expected)
        assert t["corrected"] == 2 and t["skipped"] == skipped
        assert t["redacted"] == 2 and t["redactions"] == {"email": 3}
        assert dataset["origin"]["kind"] == "traffic" and dataset["rows"] == len(expected)

        # globex: not its adapter, not its tenant.
        for tenant in ("globex", "acme"):
            resp = serving.http.post(
                CURATE.format(tenant=tenant),
                json={"name": "stolen", "adapter": "orders", **window},
                headers=globex,
            )
            assert resp.status_code == 404, resp.text

        # A version trained on the curated dataset shows where its rows came from.
        # (an adapter of its own, archived at the end: the other tests see acme's models)
        serving.create_adapter("acme", lineage_adapter)
        version = serving.upload("acme", lineage_adapter, adapters.spare)
        with _db(serving) as s:
            s.add(
                AdapterVersionDataset(
                    version_id=uuid.UUID(version["id"]),
                    dataset_id=uuid.UUID(dataset["id"]),
                    role="train",
                )
            )
            s.commit()
        graph = serving.ok(
            serving.http.get(
                f"/v1/tenants/acme/adapters/{lineage_adapter}/versions/1/lineage", headers=acme
            )
        )
        node = next(n for n in graph["nodes"] if n["id"] == f"traffic:{dataset['id']}")
        assert node["type"] == "traffic" and node["attrs"]["matched"] == 5
        assert node["label"].startswith("traffic of orders ")
        assert node["label"].endswith(": 5 traces, 2 corrected")
        edge = (f"dataset:{dataset['id']}", node["id"], "wasDerivedFrom")
        assert edge in {(e["source"], e["target"], e["relation"]) for e in graph["edges"]}
    finally:
        serving.http.delete(CAPTURE, headers=acme)
        serving.http.post(f"/v1/tenants/acme/adapters/{lineage_adapter}/archive", headers=acme)
