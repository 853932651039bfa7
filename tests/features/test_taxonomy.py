from __future__ import annotations

import pytest

from features.errors import ConfigError
from features.taxonomy import load_taxonomy

REQUIRED_QUEUES = {
    "billing_invoicing",
    "collections",
    "revenue_operations",
    "provisioning_entitlements",
    "identity_access",
    "platform_operations",
    "integrations_api",
    "security",
    "general_support",
}


def test_bundled_taxonomy_has_every_saas_queue_and_p1_to_p4():
    taxonomy = load_taxonomy()

    assert set(taxonomy.queue_ids) >= REQUIRED_QUEUES
    assert taxonomy.priority_ids == ["P1", "P2", "P3", "P4"]
    assert all(queue.owner for queue in taxonomy.queues)


def test_bad_taxonomy_names_the_file_and_the_path_inside_it(tmp_path):
    path = tmp_path / "taxonomy.yaml"
    path.write_text(
        "version: '1'\ndefault_queue: a_queue\npriorities: [{id: P1, description: x,"
        " first_response_minutes: 5}]\nqueues:\n  - {id: a_queue, name: A, owner: x,"
        " description: y}\n  - {id: b_queue, name: B, description: z}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_taxonomy(path)

    message = str(caught.value)
    assert str(path) in message
    assert "queues.1.owner" in message


def test_duplicate_queue_ids_are_rejected(tmp_path):
    path = tmp_path / "taxonomy.yaml"
    queue = "{id: same, name: A, owner: x, description: y}"
    path.write_text(
        f"version: '1'\ndefault_queue: same\npriorities: [{{id: P1, description: x,"
        f" first_response_minutes: 5}}]\nqueues: [{queue}, {queue}]\n"
    )

    with pytest.raises(ConfigError, match="duplicate queue ids: same"):
        load_taxonomy(path)


def test_unparsable_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "taxonomy.yaml"
    path.write_text("queues: [unclosed\n")

    with pytest.raises(ConfigError, match="not valid YAML"):
        load_taxonomy(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_taxonomy(tmp_path / "absent.yaml")
