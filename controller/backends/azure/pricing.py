"""Linux VM prices per hour from Azure's Retail Prices API, on-demand and spot, by size.

The API is public and unauthenticated (no SDK): one filtered query per region, followed page by
page on the configured host only. Prices rank offerings; they never fail them: an unreachable API
gives no prices for five minutes, and offerings are then ranked by size."""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from controller.backends.cache import TtlCache

DEFAULT_PRICES_URL = "https://prices.azure.com/api/retail/prices"
PRICE_PAGES_MAX = 500  # the Retail Prices API answers 100 items a page; a region's VMs fit well within
RETRY_AFTER_FAILURE_S = 300.0

# lower-case size name -> (on-demand, spot) dollars per hour; None where the API has no price
Prices = dict[str, tuple[float | None, float | None]]
# lower-case size name -> {spot?: ((primary meter region?, effective start date), price)}
_Best = dict[str, dict[bool, tuple[tuple[bool, str], float]]]


class Pricing:
    def __init__(self, prices_url: str | None, ca_bundle: str | None, clock: Callable[[], float], ttl: float) -> None:
        self.url = prices_url or DEFAULT_PRICES_URL
        self.ca_bundle = ca_bundle
        self._cache: TtlCache[Prices] = TtlCache(clock, ttl)

    def region_prices(self, region: str) -> Prices:
        """The region's prices (cached with the TTL); {} when the API cannot be read."""
        key = region.lower()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        now = self._cache.clock()
        try:
            return self._cache.put(key, self.fetch(region), since=now)
        except Exception:  # prices are a ranking hint: never an offerings() failure
            return self._cache.put(key, {}, ttl=min(self._cache.ttl, RETRY_AFTER_FAILURE_S), since=now)

    def fetch(self, region: str) -> Prices:
        """Every page of the region's consumption prices, the best item of each size and market."""
        query = f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and priceType eq 'Consumption'"
        url: str | None = self.url + ("&" if "?" in self.url else "?") + "$filter=" + urllib.parse.quote(query, safe="")
        origin = _origin(self.url)
        context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
        best: _Best = {}
        pages = 0
        while url and pages < PRICE_PAGES_MAX:
            pages += 1
            with urllib.request.urlopen(url, timeout=30, context=context) as response:
                body = json.loads(response.read())
            for item in body.get("Items") or []:
                take_price(item, best)
            next_link = body.get("NextPageLink")
            # Only ever follow pages on the host that was configured.
            url = next_link if next_link and _origin(next_link) == origin else None
        return {
            sku: (markets[False][1] if False in markets else None, markets[True][1] if True in markets else None)
            for sku, markets in best.items()
        }


def take_price(item: dict[str, Any], best: _Best) -> None:
    """Keeps one price item in `best` when it is a Linux hourly consumption price that beats the
    one kept for its size and market (the primary meter region, then the newest)."""
    sku = str(item.get("armSkuName") or "").lower()
    product = str(item.get("productName") or "")
    meter = f"{item.get('meterName') or ''} {item.get('skuName') or ''}"
    if not sku or "windows" in product.lower() or "low priority" in meter.lower():
        return
    if str(item.get("unitOfMeasure") or "1 Hour").strip().lower() != "1 hour":
        return
    if item.get("type") not in (None, "Consumption"):
        return
    try:
        price = float(str(item.get("retailPrice", item.get("unitPrice"))))
    except ValueError:
        return
    spot = "spot" in meter.lower()
    rank = (bool(item.get("isPrimaryMeterRegion", True)), str(item.get("effectiveStartDate") or ""))
    markets = best.setdefault(sku, {})
    if spot not in markets or rank > markets[spot][0]:
        markets[spot] = (rank, price)


def _origin(url: str) -> tuple[str, str, int]:
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    return scheme, (parsed.hostname or "").lower(), parsed.port or (443 if scheme == "https" else 80)
