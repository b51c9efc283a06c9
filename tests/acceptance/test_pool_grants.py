"""The operator's grant of task types to an account's worker pools, with the CLI, on the real
server over HTTP (issue 17: worker keys are not trusted across tenants)."""

from __future__ import annotations

import json

import httpx

from tests.conftest import started_server


def test_the_operator_grants_pool_types_with_the_cli_on_the_real_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with started_server(tmp_path) as server:
        account_id, _ = server.new_account("0")
        client_id, _ = server.new_account("1.00")
        made = server.cli("keys", "create", account_id, "--scope", "worker", "--json")
        assert made.returncode == 0, made.stderr
        headers = {"x-solvium-auth": json.loads(made.stdout)["api_key"]}
        body = {"name": "p", "types": ["image-to-text"]}
        with httpx.Client(base_url=server.base_url, headers=headers) as pool:
            refused = pool.post("/v2/workers", json=body)
            allowed_cli = server.cli("pools", "allow", account_id, "--types", "image-to-text")
            shown = server.cli("pools", "show", account_id)
            allowed = pool.post("/v2/workers", json=body)
            bad = server.cli("pools", "allow", account_id, "--types", "nope")
            reset = server.cli("pools", "reset", account_id)
            limited = server.cli("pools", "limit", account_id, "--accounts", client_id)
            shown_limit = server.cli("pools", "show", account_id)
            again = pool.post("/v2/workers", json={**body, "types": ["altcha"]})
    assert refused.status_code == 403 and "image-to-text" in refused.json()["error"]["message"]
    assert allowed_cli.returncode == 0, allowed_cli.stderr
    assert "granted image-to-text" in shown.stdout
    assert allowed.status_code == 201, allowed.text
    assert bad.returncode != 0
    assert reset.returncode == 0
    assert again.status_code == 403
    assert limited.returncode == 0, limited.stderr
    assert f"it leases tasks of: {client_id}" in shown_limit.stdout
