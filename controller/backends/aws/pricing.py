"""Linux prices per hour: spot from EC2's DescribeSpotPriceHistory, on-demand from the Price List
API (GetProducts, asked in `pricing_region`).

Prices rank offerings; they never fail them: a source that cannot be read gives no prices for five
minutes (PRICE_RETRY_S), and offerings are then ranked by size."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from controller.backends.aws.sdk import AwsClients
from controller.backends.cache import TtlCache
from controller.backends.model import BackendError

log = logging.getLogger("dstack.controller.backends.aws")

# A failed price source is asked again this soon, not only when the offerings' TTL runs out.
PRICE_RETRY_S = 300.0

SpotPrices = Mapping[tuple[str, str], float]  # (type, zone) -> dollars per hour
OnDemandPrices = Mapping[str, float]  # type -> dollars per hour
Prices = Mapping[Any, float]  # either


class Pricing:
    def __init__(self, clients: AwsClients, pricing_region: str, clock: Callable[[], float], ttl: float) -> None:
        self._clients = clients
        self.pricing_region = pricing_region
        self._spot: TtlCache[Prices] = TtlCache(clock, ttl)
        self._on_demand: TtlCache[Prices] = TtlCache(clock, ttl)

    def spot(self, region: str) -> SpotPrices:
        """The region's spot prices, cached for the TTL ({} for PRICE_RETRY_S when unknown)."""
        return _cached(self._spot, region, self._spot_prices)

    def on_demand(self, region: str) -> OnDemandPrices:
        """The region's on-demand prices, cached for the TTL ({} for PRICE_RETRY_S when unknown)."""
        return _cached(self._on_demand, region, self._on_demand_prices)

    def _spot_prices(self, region: str) -> dict[tuple[str, str], float] | None:
        """(type, zone) -> the latest Linux spot price; None when the API failed."""
        try:
            # Start and end now: the API answers each type and zone's last change before the start,
            # the price in effect now, and not the history.
            now = datetime.now(timezone.utc)
            pages = self._clients.pages(
                region, "DescribeSpotPriceHistory", ProductDescriptions=["Linux/UNIX"], StartTime=now, EndTime=now
            )
        except BackendError as exc:
            log.warning("spot prices unknown: %s", exc)
            return None
        latest: dict[tuple[str, str], tuple[float, float]] = {}  # -> (timestamp, price)
        for page in pages:
            for item in page.get("SpotPriceHistory", []):
                if not str(item.get("ProductDescription", "")).startswith("Linux/UNIX"):
                    continue
                key = (str(item.get("InstanceType")), str(item.get("AvailabilityZone")))
                stamp = item.get("Timestamp")
                when = stamp.timestamp() if stamp is not None else 0.0
                try:
                    price = float(item["SpotPrice"])
                except (KeyError, ValueError):
                    continue
                if key not in latest or when >= latest[key][0]:
                    latest[key] = (when, price)
        return {key: price for key, (_, price) in latest.items()}

    def _on_demand_prices(self, region: str) -> dict[str, float] | None:
        """Type -> on-demand Linux price in `region` from the Price List API; None when it failed.
        One filtered query for the whole region, 100 products a page."""
        filters = {
            "regionCode": region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        try:
            pages = self._clients.pages(
                self.pricing_region,
                "GetProducts",
                service="pricing",
                ServiceCode="AmazonEC2",
                Filters=[{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in filters.items()],
                FormatVersion="aws_v1",
                PaginationConfig={"PageSize": 100},
            )
            return on_demand_prices(doc for page in pages for doc in page.get("PriceList", []))
        except (BackendError, ValueError) as exc:  # ValueError: a PriceList entry that is not JSON
            log.warning("aws %s: on-demand prices unknown: %s", region, exc)
            return None


def _cached(cache: TtlCache[Prices], region: str, fetch: Callable[[str], Prices | None]) -> Prices:
    """A price source's answer for the TTL; a failed one (None: prices unknown) for PRICE_RETRY_S."""
    cached = cache.get(region)
    if cached is not None:
        return cached
    now = cache.clock()
    prices = fetch(region)
    ttl = cache.ttl if prices is not None else min(cache.ttl, PRICE_RETRY_S)
    return cache.put(region, prices or {}, ttl=ttl, since=now)


def on_demand_prices(price_list: Iterable[str]) -> dict[str, float]:
    """Instance type -> dollars per hour from GetProducts' PriceList (one JSON document per product).
    Where several products name a type (they should not, given the filters), the cheapest wins."""
    prices: dict[str, float] = {}
    for document in price_list:
        product = _dict(json.loads(document))
        name = _dict(_dict(product.get("product")).get("attributes")).get("instanceType")
        if not isinstance(name, str) or not name:
            continue
        for term in _dict(_dict(product.get("terms")).get("OnDemand")).values():
            for dimension in _dict(_dict(term).get("priceDimensions")).values():
                try:
                    usd = float(_dict(_dict(dimension).get("pricePerUnit")).get("USD", ""))
                except (TypeError, ValueError):
                    continue
                if usd > 0 and (name not in prices or usd < prices[name]):
                    prices[name] = usd
    return prices


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
