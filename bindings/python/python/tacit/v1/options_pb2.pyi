from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
REPLY_FIELD_NUMBER: _ClassVar[int]
reply: _descriptor.FieldDescriptor
STREAM_ITEM_FIELD_NUMBER: _ClassVar[int]
stream_item: _descriptor.FieldDescriptor
STREAM_SEND_FIELD_NUMBER: _ClassVar[int]
stream_send: _descriptor.FieldDescriptor
