"""A marketplace buyer in Python: one FIPA contract-net round against Rust
``marketplace seller`` processes (see README.md).

    python buyer.py --key buyer.key --credential buyer.cred \\
        --seller 127.0.0.1:5001@ID1 --seller 127.0.0.1:5002@ID2

It calls for quotes (``RequestQuote``, act ``CFP``) on every seller at once,
accepts the cheapest quote (then the fastest delivery) with a signed
``AcceptQuote`` that asks for a signed ``OrderConfirmed``, rejects the other
quotes, and prints the order. Exit status 0 with an order, 1 without.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the generated market.v1 module

from google.protobuf import text_format  # noqa: E402

import tacit  # noqa: E402
from market.v1.market_pb2 import (  # noqa: E402
    AcceptQuote,
    NotCarried,
    OrderConfirmed,
    OutOfStock,
    OverMaxPrice,
    Quote,
    RequestQuote,
)


def seller_spec(text: str) -> tuple[str, str | None]:
    """``ADDR`` or ``ADDR@AGENT_ID``, as ``marketplace seller`` printed them."""
    addr, _, agent_id = text.partition("@")
    return addr, agent_id or None


def days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


async def main(args: argparse.Namespace) -> int:
    tacit.register_detail(OutOfStock, OverMaxPrice, NotCarried)  # typed refusal details
    buyer = tacit.Agent(
        "buyer",
        roles=["buyer"],
        key_file=args.key,
        credentials=[args.credential] if args.credential else [],
    ).emits(RequestQuote, AcceptQuote)
    async with buyer:
        sellers = [await buyer.connect(addr, agent_id) for addr, agent_id in args.seller]
        request = RequestQuote(item=args.item, quantity=args.quantity, max_price_cents=args.max_price_cents)
        print(f"buyer {buyer.id}: {args.quantity} x {args.item}, at most {args.max_price_cents} cents,"
              f" {len(sellers)} sellers")
        round_ = await tacit.ContractNet(sellers, deadline=args.deadline_ms / 1000).call_for_proposals(request)
        for bid in round_.proposals:
            quote: Quote = bid.proposal
            print(f"  quote  {quote.seller:<8} {quote.price_cents:>8} cents  {days(quote.delivery_days)}")
        for agent_id, error in round_.declined:
            detail = getattr(error, "detail", None)  # a refusal's typed detail, e.g. OutOfStock
            print(f"  no quote from {agent_id[:10]}: {error}")
            if detail is not None:
                print(f"      {type(detail).__name__} {text_format.MessageToString(detail, as_one_line=True)}")
        best = round_.best_by(lambda quote: (quote.price_cents, quote.delivery_days))
        if best is None:
            print("no quote: no order")
            return 1
        quote = round_.proposals[best].proposal
        acceptance = AcceptQuote(item=request.item, quantity=request.quantity, price_cents=quote.price_cents)
        try:
            reply = await round_.award(best, acceptance, "another seller's quote was better", signed=True)
        except tacit.TacitError as error:  # e.g. sold out since the quote
            print(f"the award failed: {error}")
            return 1
        order: OrderConfirmed = reply.message
        print(f"order #{order.order_id} from {order.seller}: {order.quantity} x {order.item} for"
              f" {order.price_cents} cents, delivery in {days(order.delivery_days)}")
        print(f"signed confirmation: a receipt of {len(reply.receipt or b'')} bytes")
        if args.receipt and reply.receipt:
            pathlib.Path(args.receipt).write_bytes(reply.receipt)
            print(f"receipt written to {args.receipt} (check it with `tacit verify {args.receipt}`)")
        for peer in sellers:
            peer.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seller", action="append", type=seller_spec, required=True, metavar="ADDR[@ID]")
    parser.add_argument("--key", help="the buyer's key file (created if missing)")
    parser.add_argument("--credential", help="the market's credential for this buyer (tacit org issue)")
    parser.add_argument("--item", default="gear")
    parser.add_argument("--quantity", type=int, default=3)
    parser.add_argument("--max-price-cents", type=int, default=10_000)
    parser.add_argument("--deadline-ms", type=int, default=2_000)
    parser.add_argument("--receipt", help="write the confirmation's receipt to this file")
    sys.exit(asyncio.run(main(parser.parse_args())))
