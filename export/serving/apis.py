"""TF Serving's model status and metadata responses, shared by the REST and gRPC front-ends."""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from export.serving.errors import invalid, not_found
from export.serving.repository import ModelRepository, Servable

SIGNATURE_DEF_FIELD = "signature_def"
_STATE = get_model_status_pb2.ModelVersionStatus.State


def model_status(repository: ModelRepository, name: str, version: int | None = None,
                 label: str | None = None) -> get_model_status_pb2.GetModelStatusResponse:
    """Status of one version, or of every version seen, of a model (NOT_FOUND if none)."""
    if label:
        version = repository.resolve_label(name, label)
    states = repository.version_states(name)
    if version is not None:
        if version not in states:
            raise not_found(f"Could not find version {version} of model {name}")
        states = {version: states[version]}
    elif not states:
        raise not_found(f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state in states.items():
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = _STATE.Value(state.state)
        entry.status.error_code = state.error_code  # enum by name
        entry.status.error_message = state.error_message
    return response


def check_metadata_fields(fields) -> None:
    """Only ``signature_def`` metadata exists, as in TF Serving."""
    if not fields:
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for field in fields:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid(f"Metadata field {field} is not supported")


def model_metadata(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse with the SignatureDefMap packed under ``signature_def``."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map)
    return response


def _to_dict(message, preserve_names: bool) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=preserve_names,
                                     always_print_fields_with_no_presence=True)


def model_status_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict:
    """REST form of a status response (field names from the proto's json_name)."""
    return _to_dict(response, preserve_names=False)


def model_metadata_json(servable: Servable) -> dict:
    """REST form of the metadata: ``{"model_spec": ..., "metadata": {"signature_def": ...}}``."""
    response = model_metadata(servable)
    return {"model_spec": _to_dict(response.model_spec, preserve_names=True),
            "metadata": {SIGNATURE_DEF_FIELD: _to_dict(servable.signature_def_map, True)}}
