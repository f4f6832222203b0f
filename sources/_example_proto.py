"""``tf.train.Example`` without TensorFlow: its message classes, built with protobuf.

The messages are described here field by field from TensorFlow's public definitions
(``tensorflow/core/example/example.proto`` and ``feature.proto``, proto3)::

    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }
    message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                                   Int64List int64_list = 3; } }
    message Features { map<string, Feature> feature = 1; }
    message Example { Features features = 1; }

and turned into classes by protobuf's descriptor APIs (what ``protoc``'s generated
``example_pb2`` does at import), in a private descriptor pool under the package
``seqpipe.tfrecord``: the wire format does not carry package names, and TensorFlow,
when a program imports it too, registers its own ``tensorflow.Example`` in the default
pool without a clash.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_PACKAGE = "seqpipe.tfrecord"


def _file_descriptor() -> Any:
    from google.protobuf import descriptor_pb2

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="seqpipe/tfrecord/example.proto", package=_PACKAGE, syntax="proto3"
    )

    def message(name: str) -> Any:
        added = proto.message_type.add()
        added.name = name
        return added

    def add(owner: Any, name: str, number: int, kind: int, label: int, type_name: str = "") -> Any:
        added = owner.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            added.type_name = f".{_PACKAGE}.{type_name}"
        return added

    repeated, optional = field.LABEL_REPEATED, field.LABEL_OPTIONAL
    add(message("BytesList"), "value", 1, field.TYPE_BYTES, repeated)
    for name, kind in (("FloatList", field.TYPE_FLOAT), ("Int64List", field.TYPE_INT64)):
        add(message(name), "value", 1, kind, repeated).options.packed = True
    feature = message("Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("BytesList", "FloatList", "Int64List"), start=1):
        lower = {"BytesList": "bytes_list", "FloatList": "float_list", "Int64List": "int64_list"}
        added = add(feature, lower[name], number, field.TYPE_MESSAGE, optional, name)
        added.oneof_index = 0
    features = message("Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    add(entry, "key", 1, field.TYPE_STRING, optional)
    add(entry, "value", 2, field.TYPE_MESSAGE, optional, "Feature")
    add(features, "feature", 1, field.TYPE_MESSAGE, repeated, "Features.FeatureEntry")
    add(message("Example"), "features", 1, field.TYPE_MESSAGE, optional, "Features")
    return proto


@cache
def example_class() -> type:
    """The ``Example`` message class (built once per process, on first use).

    Example:
        >>> Example = example_class()
        >>> example = Example()
        >>> example.features.feature["label"].int64_list.value.append(7)
        >>> parsed = Example.FromString(example.SerializeToString())
        >>> list(parsed.features.feature["label"].int64_list.value)
        [7]
    """
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Example"))
