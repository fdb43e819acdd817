from tacit.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RequestQuote(_message.Message):
    __slots__ = ("item", "quantity", "max_price_cents")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    item: str
    quantity: int
    max_price_cents: int
    def __init__(self, item: _Optional[str] = ..., quantity: _Optional[int] = ..., max_price_cents: _Optional[int] = ...) -> None: ...

class Quote(_message.Message):
    __slots__ = ("price_cents", "delivery_days", "seller", "in_stock")
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_DAYS_FIELD_NUMBER: _ClassVar[int]
    SELLER_FIELD_NUMBER: _ClassVar[int]
    IN_STOCK_FIELD_NUMBER: _ClassVar[int]
    price_cents: int
    delivery_days: int
    seller: str
    in_stock: int
    def __init__(self, price_cents: _Optional[int] = ..., delivery_days: _Optional[int] = ..., seller: _Optional[str] = ..., in_stock: _Optional[int] = ...) -> None: ...

class AcceptQuote(_message.Message):
    __slots__ = ("item", "quantity", "price_cents")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    item: str
    quantity: int
    price_cents: int
    def __init__(self, item: _Optional[str] = ..., quantity: _Optional[int] = ..., price_cents: _Optional[int] = ...) -> None: ...

class OrderConfirmed(_message.Message):
    __slots__ = ("order_id", "seller", "item", "quantity", "price_cents", "delivery_days", "stock_left")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_DAYS_FIELD_NUMBER: _ClassVar[int]
    STOCK_LEFT_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    seller: str
    item: str
    quantity: int
    price_cents: int
    delivery_days: int
    stock_left: int
    def __init__(self, order_id: _Optional[int] = ..., seller: _Optional[str] = ..., item: _Optional[str] = ..., quantity: _Optional[int] = ..., price_cents: _Optional[int] = ..., delivery_days: _Optional[int] = ..., stock_left: _Optional[int] = ...) -> None: ...

class OutOfStock(_message.Message):
    __slots__ = ("item", "available")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item: str
    available: int
    def __init__(self, item: _Optional[str] = ..., available: _Optional[int] = ...) -> None: ...

class OverMaxPrice(_message.Message):
    __slots__ = ("item", "price_cents")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    item: str
    price_cents: int
    def __init__(self, item: _Optional[str] = ..., price_cents: _Optional[int] = ...) -> None: ...

class NotCarried(_message.Message):
    __slots__ = ("item",)
    ITEM_FIELD_NUMBER: _ClassVar[int]
    item: str
    def __init__(self, item: _Optional[str] = ...) -> None: ...
