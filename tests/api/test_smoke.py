from fastapi.testclient import TestClient


def test_recommend_then_feedback_is_learned(client: TestClient) -> None:
    from tests.conftest import wait_until

    tip = client.post("/v1/recommend").json()
    assert set(tip) == {
        "event_id",
        "tip",
        "probability",
        "policy",
        "model_version",
        "missing_sources",
    }
    assert tip["missing_sources"] == []
    reply = client.post("/v1/feedback", json={"event_id": tip["event_id"], "reaction": "done"})
    assert reply.status_code == 200
    services = client.app.state.services  # type: ignore[attr-defined]
    wait_until(lambda: services.store.get(tip["event_id"]).learn_seq is not None)
