"""TensorFlow's GraphDef messages, defined here so a frozen .pb reads without TensorFlow.

The schema is the subset of TensorFlow's `graph.proto`, `node_def.proto`,
`attr_value.proto`, `tensor.proto`, `tensor_shape.proto`, `function.proto` and
`op_def.proto` the frontend reads, with TensorFlow's field numbers (wire
compatible; fields left out are skipped when parsing). It is built as a
descriptor at import time, so no generated code ties it to one protobuf
release. Enums (DataType) are read as plain integers.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "bool": _F.TYPE_BOOL,
}
_PACKAGE = "aic.tf"

# message -> [(field, number, type, label)]; label "?" optional, "*" repeated,
# "map:K" a map from K (string) to the type; a oneof is marked by "|name".
_SCHEMA: dict[str, list[tuple[str, int, str, str]]] = {
    "GraphDef": [("node", 1, "NodeDef", "*"), ("library", 2, "FunctionDefLibrary", "?")],
    "NodeDef": [
        ("name", 1, "string", "?"),
        ("op", 2, "string", "?"),
        ("input", 3, "string", "*"),
        ("device", 4, "string", "?"),
        ("attr", 5, "AttrValue", "map"),
    ],
    "AttrValue": [
        ("list", 1, "ListValue", "|value"),
        ("s", 2, "bytes", "|value"),
        ("i", 3, "int64", "|value"),
        ("f", 4, "float", "|value"),
        ("b", 5, "bool", "|value"),
        ("type", 6, "int32", "|value"),
        ("shape", 7, "TensorShapeProto", "|value"),
        ("tensor", 8, "TensorProto", "|value"),
        ("placeholder", 9, "string", "|value"),
        ("func", 10, "NameAttrList", "|value"),
    ],
    "ListValue": [
        ("s", 2, "bytes", "*"),
        ("i", 3, "int64", "*"),
        ("f", 4, "float", "*"),
        ("b", 5, "bool", "*"),
        ("type", 6, "int32", "*"),
        ("shape", 7, "TensorShapeProto", "*"),
        ("tensor", 8, "TensorProto", "*"),
        ("func", 9, "NameAttrList", "*"),
    ],
    "NameAttrList": [("name", 1, "string", "?"), ("attr", 2, "AttrValue", "map")],
    "TensorShapeProto": [("dim", 2, "Dim", "*"), ("unknown_rank", 3, "bool", "?")],
    "Dim": [("size", 1, "int64", "?"), ("name", 2, "string", "?")],
    "TensorProto": [
        ("dtype", 1, "int32", "?"),
        ("tensor_shape", 2, "TensorShapeProto", "?"),
        ("tensor_content", 4, "bytes", "?"),
        ("half_val", 13, "int32", "*"),
        ("float_val", 5, "float", "*"),
        ("double_val", 6, "double", "*"),
        ("int_val", 7, "int32", "*"),
        ("string_val", 8, "bytes", "*"),
        ("int64_val", 10, "int64", "*"),
        ("bool_val", 11, "bool", "*"),
        ("uint32_val", 16, "uint32", "*"),
        ("uint64_val", 17, "uint64", "*"),
    ],
    "FunctionDefLibrary": [("function", 1, "FunctionDef", "*")],
    "FunctionDef": [
        ("signature", 1, "OpDef", "?"),
        ("node_def", 3, "NodeDef", "*"),
        ("ret", 4, "string", "map"),
    ],
    "OpDef": [("name", 1, "string", "?"), ("input_arg", 2, "ArgDef", "*"), ("output_arg", 3, "ArgDef", "*")],
    "ArgDef": [("name", 1, "string", "?"), ("type", 3, "int32", "?")],
}


def _field(name: str, number: int, kind: str, label: str) -> _F:
    field = _F(name=name, number=number)
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{_PACKAGE}.{kind}"
    field.label = _F.LABEL_REPEATED if label in ("*", "map") else _F.LABEL_OPTIONAL
    return field


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="aic_tf_graph.proto", package=_PACKAGE, syntax="proto3")
    for message, fields in _SCHEMA.items():
        proto = file.message_type.add(name=message)
        oneofs: list[str] = []
        for name, number, kind, label in fields:
            if label == "map":  # map<string, kind>: a repeated nested entry message
                entry = proto.nested_type.add(name=f"{name.title()}Entry")
                entry.options.map_entry = True
                entry.field.append(_field("key", 1, "string", "?"))
                entry.field.append(_field("value", 2, kind, "?"))
                field = _field(name, number, "x", "*")
                field.type_name = f".{_PACKAGE}.{message}.{entry.name}"
            else:
                field = _field(name, number, kind, label)
            if label.startswith("|"):
                if label[1:] not in oneofs:
                    oneofs.append(label[1:])
                    proto.oneof_decl.add(name=label[1:])
                field.oneof_index = oneofs.index(label[1:])
            proto.field.append(field)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> type:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


GraphDef = _message("GraphDef")
NodeDef = _message("NodeDef")
AttrValue = _message("AttrValue")
TensorProto = _message("TensorProto")
FunctionDef = _message("FunctionDef")
