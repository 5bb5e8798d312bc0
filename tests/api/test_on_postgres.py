"""The File, cachedContents and Interactions API tests that exercise the metadata store, again with the
metadata on PostgreSQL: the same tests (imported, not copied), the `settings` fixture pointing at a fresh
PostgreSQL database. The rest of the suite runs on SQLite only, which keeps CI's time in bounds."""

import pytest

from tests.api import test_caches, test_files, test_interactions, test_upload


@pytest.fixture
def settings(settings, postgres_url):
    return settings.model_copy(update={"database_url": postgres_url})


def _take(module, *names):
    for name in names:
        globals()[name] = getattr(module, name)


_take(test_upload, "test_resumable_in_several_chunks_without_a_key_on_chunks",
      "test_snake_case_metadata_and_client_proposed_name", "test_offset_mismatch_is_refused_and_session_survives",
      "test_wrong_final_size_discards_the_upload", "test_cancel_then_the_session_is_gone",
      "test_retried_finalize_answers_the_same_file", "test_project_quota_crossed_mid_stream",
      "test_multipart_related", "test_googleapiclient_resumable_flow")
_take(test_files, "test_file_resource_has_every_field", "test_list_is_newest_first_paged_and_empty_is_an_empty_object",
      "test_delete_then_everything_is_permission_denied", "test_projects_are_walls",
      "test_expired_files_are_never_served_and_are_swept")
_take(test_caches, "test_create_get_list_patch_delete", "test_caches_are_per_project",
      "test_expired_caches_vanish_and_are_swept")
_take(test_interactions, "test_retention_expires_and_continuing_extends_the_chain",
      "test_other_project_cannot_see_in_process", "test_older_turns_and_legacy_response_format_are_read")


def test_a_nul_in_a_display_name_is_bad_input_not_a_server_error(client):
    from tests.conftest import H

    r = client.post("/upload/v1beta/files", headers={**H, "X-Goog-Upload-Protocol": "resumable",
                                                     "X-Goog-Upload-Command": "start"},
                    json={"file": {"displayName": "a\u0000b", "mimeType": "image/png"}})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
