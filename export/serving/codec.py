"""TF Serving's REST JSON <-> numpy arrays: row (``instances``) and columnar (``inputs``) formats.

Binary strings travel as ``{"b64": "..."}``; string outputs whose names end in ``_bytes`` are
returned that way too. Input dtypes are numpy dtypes (``object`` for TensorFlow strings).
"""

from __future__ import annotations

import base64
import binascii
import json
import math

import numpy as np

from export.serving.errors import ServingError, invalid

ROW, COLUMNAR = "row", "columnar"
BYTES_SUFFIX = "_bytes"


# -- request -------------------------------------------------------------------------------


def parse_json_object(body: bytes) -> dict:
    """The request body as a JSON object, or INVALID_ARGUMENT saying what is wrong."""
    if not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except UnicodeDecodeError as error:
        raise invalid(f"JSON Parse error: invalid UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise invalid(f"JSON Parse error: {error.msg} at offset: {error.pos}") from None
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    if not isinstance(document, dict):
        raise invalid(f"JSON Value: {_preview(document)} Is not object")
    return document


def signature_name(document: dict) -> str:
    """The optional ``signature_name`` ('' when absent)."""
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid("'signature_name' key must be a string value")
    return name


def decode_predict_inputs(document: dict, dtypes: dict[str, np.dtype]):
    """``(arrays by input name, ROW or COLUMNAR)`` from a predict request object."""
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid("Not formatted correctly expecting only one of 'inputs' or 'instances' "
                      "keys to exist")
    if has_instances:
        return _decode_instances(document["instances"], dtypes), ROW
    if has_inputs:
        return _decode_columnar(document["inputs"], dtypes), COLUMNAR
    raise invalid("Missing 'inputs' or 'instances' key")


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(value) -> bool:
    """A JSON object keyed by input names (a ``{"b64": ...}`` object is a value)."""
    return isinstance(value, dict) and not _is_b64(value)


def _check_instance_keys(index: int, instance: dict, dtypes) -> None:
    """A row-format object must have exactly the signature's inputs (json_tensor.cc)."""
    if set(instance) != set(dtypes):
        raise invalid(f"Failed to process element: {index} of 'instances' list. JSON object: "
                      f"{_preview(instance)} keys must be equal to: {','.join(sorted(dtypes))}")


def _decode_instances(instances, dtypes) -> dict[str, np.ndarray]:
    if not isinstance(instances, list):
        raise invalid("Expecting 'instances' to be a list/array")
    if not instances:
        raise invalid("No values in 'instances' array")
    named = _is_named(instances[0])
    for index, instance in enumerate(instances):
        if _is_named(instance) != named:
            kind = "object" if named else "value/list"
            raise invalid(f"Expecting {kind} at item {index} of 'instances' list "
                          "(all items must be objects keyed by input name, or all plain values)")
        if named:
            _check_instance_keys(index, instance, dtypes)
    if named:
        return {name: to_array([item[name] for item in instances], dtype, name)
                for name, dtype in dtypes.items()}
    if len(dtypes) != 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      f"input tensors are required: {', '.join(sorted(dtypes))}")
    (name, dtype), = dtypes.items()
    return {name: to_array(instances, dtype, name)}


def _decode_columnar(inputs, dtypes) -> dict[str, np.ndarray]:
    """Columnar ``inputs``: keys the signature does not name are ignored, as TF Serving does."""
    if _is_named(inputs):
        for name in sorted(dtypes):
            if name not in inputs:
                raise invalid(f"Missing named input: {name} in 'inputs' object.")
        return {name: to_array(inputs[name], dtype, name) for name, dtype in dtypes.items()}
    if len(dtypes) != 1:
        raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                      f"input tensors are required: {', '.join(sorted(dtypes))}")
    (name, dtype), = dtypes.items()
    return {name: to_array(inputs, dtype, name)}


def to_array(value, dtype: np.dtype, name: str) -> np.ndarray:
    """A dense array of ``dtype`` from nested JSON lists, or INVALID_ARGUMENT."""
    if dtype == object:
        try:
            return _strings_to_array(value, name)
        except RecursionError:
            raise invalid(f'Input "{name}": lists nested too deeply') from None
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):
        raise invalid(f'Input "{name}": nested lists have unequal lengths (a tensor must be '
                      "dense: every list at the same depth needs the same length)") from None
    return _cast_numbers(array, dtype, name)


def _cast_numbers(array: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    kind, target = array.dtype.kind, dtype.kind
    if array.size == 0:
        return array.astype(dtype)
    accepted = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "c": "iufc"}.get(target)
    if accepted is None:
        raise ServingError("UNIMPLEMENTED", f'Input "{name}": JSON conversion to '
                                            f"{dtype.name} is not supported")
    if kind not in accepted:
        raise invalid(f'Input "{name}" expects {dtype.name} values, but got {_kind_label(kind)}')
    if target in "iu":
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise invalid(f'Input "{name}": value out of range for {dtype.name}')
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype)
    if target == "f" and np.any(np.isinf(cast) & np.isfinite(array)):
        raise invalid(f'Input "{name}": value out of range for {dtype.name}')
    return cast


def _kind_label(kind: str) -> str:
    return {"U": "strings", "S": "strings", "b": "booleans", "f": "floating-point numbers",
            "i": "integers", "u": "integers", "c": "complex numbers"}.get(
                kind, "JSON objects, nulls or out-of-range numbers")


def _dense_shape(value) -> list[int]:
    """Shape implied by following the first element of each nested list."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _strings_to_array(value, name: str) -> np.ndarray:
    shape = _dense_shape(value)
    flat: list[bytes] = []
    _collect_strings(value, shape, 0, flat, name)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _collect_strings(value, shape, level, out, name) -> None:
    if isinstance(value, list):
        if level >= len(shape) or len(value) != shape[level]:
            raise invalid(f'Input "{name}": nested lists have unequal lengths (a tensor must '
                          "be dense: every list at the same depth needs the same length)")
        for item in value:
            _collect_strings(item, shape, level + 1, out, name)
        return
    if level != len(shape):
        raise invalid(f'Input "{name}": value {_preview(value)} found at depth {level}, '
                      f"expected depth {len(shape)}")
    if isinstance(value, str):
        out.append(value.encode("utf-8"))
    elif _is_b64(value):
        out.append(decode_b64(value["b64"], name))
    else:
        raise invalid(f'Input "{name}" expects string values or {{"b64": ...}} objects, but got '
                      f"{_preview(value)}")


def decode_b64(text: str, name: str) -> bytes:
    """Standard base64 (padding optional), or INVALID_ARGUMENT."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f'Input "{name}": Unable to base64 decode {_preview(text)}') from None


def _preview(value, limit=60) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# -- response ------------------------------------------------------------------------------
#
# JSON text is built straight from numpy (no nested Python lists: with TensorFlow loaded, big
# nested lists trigger slow full garbage collections). Floats are written in their shortest
# round-trip form for their own precision, as TF Serving does; NaN/Infinity as TF Serving does.


def _element_texts(name: str, array: np.ndarray) -> list[str]:
    """JSON text of every element, in C order; ``*_bytes`` strings as ``{"b64": ...}``."""
    flat = array.ravel()
    kind = flat.dtype.kind
    if kind in "OS":
        if name.endswith(BYTES_SUFFIX):
            return ['{"b64":"' + base64.b64encode(v).decode("ascii") + '"}' for v in flat.tolist()]
        return [json.dumps(v.decode("utf-8", errors="replace")) for v in flat.tolist()]
    if kind == "b":
        return np.where(flat, "true", "false").tolist()
    if kind in "iu":
        return flat.astype(str).tolist()
    if kind == "V" or (kind == "f" and flat.dtype.itemsize < 4):
        flat, kind = flat.astype(np.float32), "f"  # float16 / bfloat16
    if kind != "f":
        raise ServingError("UNIMPLEMENTED", f'Output "{name}": {flat.dtype} has no JSON form')
    texts = flat.astype(str)
    if not np.isfinite(flat).all():
        texts[np.isnan(flat)] = "NaN"
        texts[np.isposinf(flat)] = "Infinity"
        texts[np.isneginf(flat)] = "-Infinity"
    return texts.tolist()


def _nest(texts: list[str], shape: tuple[int, ...], keep: int) -> list[str]:
    """Join element texts into JSON arrays for ``shape[keep:]``: one text per leading index."""
    for level in range(len(shape) - 1, keep - 1, -1):
        size, groups = shape[level], math.prod(shape[:level])
        texts = ["[" + ",".join(texts[i * size:(i + 1) * size]) + "]" for i in range(groups)]
    return texts


def encode_predict_response(outputs: dict[str, np.ndarray], request_format: str) -> bytes:
    """``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar) JSON, as TF Serving.

    With a single output the value is given directly, otherwise keyed by output name.
    """
    keys = {name: json.dumps(name) for name in outputs}
    if request_format == COLUMNAR:
        texts = {name: _nest(_element_texts(name, a), a.shape, 0)[0]
                 for name, a in outputs.items()}
        if len(texts) == 1:
            return ('{"outputs":' + next(iter(texts.values())) + "}").encode()
        body = ",".join(keys[name] + ":" + text for name, text in texts.items())
        return ('{"outputs":{' + body + "}}").encode()
    batch = _row_batch_size(outputs)
    rows = {name: _nest(_element_texts(name, a), a.shape, 1) for name, a in outputs.items()}
    if len(rows) == 1:
        items = next(iter(rows.values()))
    else:
        items = ["{" + ",".join(keys[name] + ":" + rows[name][i] for name in rows) + "}"
                 for i in range(batch)]
    return ('{"predictions":[' + ",".join(items) + "]}").encode()


def _row_batch_size(outputs: dict[str, np.ndarray]) -> int:
    """The shared 0th dimension of every output (row format splits outputs into rows)."""
    batch = None
    for name, array in outputs.items():
        if array.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information (a scalar output "
                          "cannot be split into rows; use the columnar 'inputs' format)")
        if batch is not None and array.shape[0] != batch:
            raise invalid(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                          f"expecting: {batch} (use the columnar 'inputs' format)")
        batch = array.shape[0]
    return batch or 0


def dumps(payload) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
