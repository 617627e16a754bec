"""Customer rules: pure functions, no I/O.

What a customer may be:

- its timezone is an IANA name (`validate_timezone`);
- its billing address names an ISO 3166-1 alpha-2 country (`validate_country`);
- its tax ids have a type from `TAX_ID_TYPES` and a value of roughly that type's shape
  (`normalize_tax_id`): a typo is caught, a check digit is not computed;
- its place in the hierarchy is one level deep (`check_hierarchy`): a customer is either
  a root, which may have children, or a child, which has a parent and no children. A
  child shares its parent's currency, so the parent's invoice can consolidate the
  child's lines when the child is billed to its parent (`bill_to_parent`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from billing_common.currency import Currency
from billing_common.errors import ValidationFailed

MAX_INVOICE_GRACE_PERIOD_DAYS = 30
MAX_TAX_IDS = 10

#: Fields that never change once a customer exists, and why (see `CustomerFieldImmutable`).
IMMUTABLE_FIELDS: Mapping[str, str] = {
    "currency": (
        "every amount already owed, invoiced, drawn down or posted to the ledger for this "
        "customer is in its currency, and its children share it; create a new customer to "
        "bill in another currency"
    ),
}


class InvalidCountry(ValidationFailed):
    code = "invalid_country"
    title = "Not an ISO 3166-1 alpha-2 country code"


class InvalidTaxIdType(ValidationFailed):
    code = "invalid_tax_id_type"
    title = "Unknown tax id type"


class InvalidTaxIdValue(ValidationFailed):
    code = "invalid_tax_id_value"
    title = "The tax id value does not have the shape of its type"


class DuplicateTaxId(ValidationFailed):
    code = "duplicate_tax_id"
    title = "The same tax id is listed twice"


class CustomerFieldImmutable(ValidationFailed):
    code = "customer_field_immutable"
    title = "This field of a customer cannot change"


class ParentNotFound(ValidationFailed):
    code = "customer_parent_not_found"
    title = "The parent customer does not exist"


class ParentCurrencyMismatch(ValidationFailed):
    code = "customer_parent_currency_mismatch"
    title = "A child customer must have its parent's currency"


class ParentIsChild(ValidationFailed):
    code = "customer_parent_is_child"
    title = "The parent customer is itself a child: hierarchies are one level deep"


class CustomerHasChildren(ValidationFailed):
    code = "customer_has_children"
    title = "A customer with children cannot become a child: hierarchies are one level deep"


class HierarchyCycle(ValidationFailed):
    code = "customer_hierarchy_cycle"
    title = "A customer cannot be its own ancestor"


class BillToParentWithoutParent(ValidationFailed):
    code = "customer_bill_to_parent_without_parent"
    title = "Only a customer with a parent can be billed to its parent"


def validate_timezone(name: str) -> str:
    """An IANA timezone name, as given: `validate_timezone("Europe/Paris")` is "Europe/Paris".

    Raises ValueError for names the tz database does not know (and for paths).
    """
    if name not in _ZONES:
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Paris')")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - the set above comes from the same db
        raise ValueError(f"{name!r} is not an IANA timezone") from exc
    return name


_ZONES = frozenset(available_timezones()) | {"UTC"}

#: The 249 officially assigned ISO 3166-1 alpha-2 codes (user-assigned codes such as XK
#: are not in the standard and are refused).
_ISO_3166_CODES = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
)
ISO_3166_ALPHA_2 = frozenset(_ISO_3166_CODES.split())


def validate_country(code: str, *, field: str = "billing_address.country") -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased: `validate_country("fr")` is "FR".

    Raises `InvalidCountry` (code `invalid_country`) naming `field` otherwise.
    """
    normalized = code.upper()
    if normalized not in ISO_3166_ALPHA_2:
        message = f"{code!r} is not an ISO 3166-1 alpha-2 country code (e.g. 'FR', 'US')"
        raise InvalidCountry(
            f"{field}: {message}",
            errors=[{"field": field, "message": message, "type": "invalid_country"}],
        )
    return normalized


@dataclass(frozen=True)
class TaxIdType:
    """A kind of tax id: what it is, the loose shape of its normalized value, an example."""

    description: str
    pattern: re.Pattern[str]
    example: str


_EU_PREFIXES = "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|XI"

#: The tax id types a customer may carry (names as Stripe spells them). A value is
#: normalized (upper-cased, spaces removed) and must then match the pattern: the shape
#: is checked, not the check digits nor the registry.
TAX_ID_TYPES: Mapping[str, TaxIdType] = {
    "ae_trn": TaxIdType("United Arab Emirates TRN", re.compile(r"[0-9]{15}"), "123456789012345"),
    "au_abn": TaxIdType("Australian Business Number", re.compile(r"[0-9]{11}"), "12345678912"),
    "br_cnpj": TaxIdType(
        "Brazilian CNPJ",
        re.compile(r"[0-9]{2}\.?[0-9]{3}\.?[0-9]{3}/?[0-9]{4}-?[0-9]{2}"),
        "01.234.456/5432-10",
    ),
    "ca_bn": TaxIdType("Canadian Business Number", re.compile(r"[0-9]{9}"), "123456789"),
    "ca_gst_hst": TaxIdType(
        "Canadian GST/HST number", re.compile(r"[0-9]{9}RT[0-9]{4}"), "123456789RT0002"
    ),
    "ch_vat": TaxIdType(
        "Swiss VAT number",
        re.compile(r"CHE-?[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}(MWST|TVA|IVA)?"),
        "CHE-123.456.789 MWST",
    ),
    "eu_vat": TaxIdType(
        "European VAT number, with its member state prefix (EL for Greece, XI for "
        "Northern Ireland)",
        re.compile(rf"({_EU_PREFIXES})[0-9A-Z+*]{{2,12}}"),
        "DE123456789",
    ),
    "gb_vat": TaxIdType(
        "United Kingdom VAT number",
        re.compile(r"GB([0-9]{9}|[0-9]{12}|GD[0-9]{3}|HA[0-9]{3})"),
        "GB123456789",
    ),
    "in_gst": TaxIdType(
        "Indian GSTIN",
        re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]Z[0-9A-Z]"),
        "12ABCDE3456FGZH",
    ),
    "jp_cn": TaxIdType("Japanese Corporate Number", re.compile(r"[0-9]{13}"), "1234567891234"),
    "jp_trn": TaxIdType(
        "Japanese Tax Registration Number", re.compile(r"T[0-9]{13}"), "T1234567891234"
    ),
    "mx_rfc": TaxIdType(
        "Mexican RFC", re.compile(r"[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}"), "ABC010203AB9"
    ),
    "no_vat": TaxIdType("Norwegian VAT number", re.compile(r"[0-9]{9}(MVA)?"), "123456789MVA"),
    "nz_gst": TaxIdType(
        "New Zealand GST number", re.compile(r"[0-9]{2,3}-?[0-9]{3}-?[0-9]{3}"), "123456789"
    ),
    "sg_gst": TaxIdType(
        "Singaporean GST number", re.compile(r"[A-Z][0-9]{8}[A-Z]|[0-9]{9}[A-Z]"), "M12345678X"
    ),
    "us_ein": TaxIdType(
        "United States Employer Identification Number",
        re.compile(r"[0-9]{2}-?[0-9]{7}"),
        "12-3456789",
    ),
    "za_vat": TaxIdType("South African VAT number", re.compile(r"4[0-9]{9}"), "4123456789"),
}


def normalize_tax_id(type_: str, value: str, *, field: str = "tax_ids.0") -> str:
    """The value of a tax id of type `type_`, upper-cased without spaces, if it has the
    shape of that type: `normalize_tax_id("eu_vat", "de 123 456 789")` is "DE123456789".

    Raises `InvalidTaxIdType` for a type not in `TAX_ID_TYPES`, `InvalidTaxIdValue` for
    a value whose shape does not match; both name `field` (the tax id's position).
    """
    kind = TAX_ID_TYPES.get(type_)
    if kind is None:
        message = f"{type_!r} is not a tax id type; known: {', '.join(sorted(TAX_ID_TYPES))}"
        raise InvalidTaxIdType(
            f"{field}.type: {message}",
            errors=[{"field": f"{field}.type", "message": message, "type": "invalid_tax_id_type"}],
        )
    normalized = "".join(value.split()).upper()
    if not kind.pattern.fullmatch(normalized):
        message = f"{value!r} is not a {kind.description} (e.g. {kind.example!r})"
        raise InvalidTaxIdValue(
            f"{field}.value: {message}",
            errors=[
                {"field": f"{field}.value", "message": message, "type": "invalid_tax_id_value"}
            ],
        )
    return normalized


def normalize_tax_ids(tax_ids: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each `(type, value)` normalized by `normalize_tax_id`; the same tax id twice is
    `DuplicateTaxId`. Order is kept: it is the order invoices print them in."""
    normalized: list[tuple[str, str]] = []
    for index, (type_, value) in enumerate(tax_ids):
        entry = (type_, normalize_tax_id(type_, value, field=f"tax_ids.{index}"))
        if entry in normalized:
            message = f"{type_} {entry[1]} is listed more than once"
            raise DuplicateTaxId(
                f"tax_ids.{index}: {message}",
                errors=[{"field": f"tax_ids.{index}", "message": message, "type": "duplicate"}],
            )
        normalized.append(entry)
    return normalized


@dataclass(frozen=True)
class HierarchyMember:
    """What the hierarchy rules need to know of a customer."""

    id: str
    currency: Currency
    parent_id: str | None


def check_hierarchy(
    customer: HierarchyMember,
    *,
    bill_to_parent: bool,
    has_children: bool,
    parent: HierarchyMember | None,
) -> None:
    """Refuse a customer whose requested place in the hierarchy breaks a rule.

    `customer.parent_id` is the parent asked for; `parent` is that customer as stored in
    the same tenant (None when there is none); `has_children` whether some customer
    already has `customer` as its parent. Hierarchies are one level deep: a child's
    parent is a root, and a customer with children stays a root. So the only possible
    cycle is a customer naming itself.

    >>> usd = Currency.of("USD")
    >>> check_hierarchy(
    ...     HierarchyMember("cus_b", usd, "cus_a"),
    ...     bill_to_parent=True,
    ...     has_children=False,
    ...     parent=HierarchyMember("cus_a", usd, None),
    ... )
    """
    if customer.parent_id is None:
        if bill_to_parent:
            raise BillToParentWithoutParent(
                "bill_to_parent is true but the customer has no parent_id",
                errors=[_error("bill_to_parent", "requires a parent_id", "without_parent")],
            )
        return
    if customer.parent_id == customer.id:
        raise HierarchyCycle(
            f"{customer.id} cannot be its own parent",
            errors=[_error("parent_id", "a customer cannot be its own parent", "cycle")],
        )
    if parent is None:
        raise ParentNotFound(
            f"parent_id: no customer {customer.parent_id}",
            errors=[_error("parent_id", f"no customer {customer.parent_id}", "not_found")],
        )
    if parent.parent_id == customer.id:
        raise HierarchyCycle(
            f"{parent.id} is a child of {customer.id}, so it cannot be its parent",
            errors=[_error("parent_id", f"{parent.id} is a child of this customer", "cycle")],
        )
    if parent.parent_id is not None:
        raise ParentIsChild(
            f"{parent.id} is a child of {parent.parent_id}: hierarchies are one level deep",
            errors=[_error("parent_id", f"{parent.id} is itself a child", "parent_is_child")],
        )
    if has_children:
        raise CustomerHasChildren(
            f"{customer.id} has children, so it cannot become a child: hierarchies are one "
            "level deep",
            errors=[_error("parent_id", "this customer has children", "has_children")],
        )
    if parent.currency != customer.currency:
        raise ParentCurrencyMismatch(
            f"the customer is billed in {customer.currency} but {parent.id} in "
            f"{parent.currency}: a child shares its parent's currency",
            errors=[_error("parent_id", f"{parent.id} is billed in {parent.currency}", "currency")],
        )


def refuse_immutable_fields(fields: Sequence[str]) -> None:
    """Raise `CustomerFieldImmutable` if an update names a field in `IMMUTABLE_FIELDS`."""
    frozen = sorted(set(fields) & set(IMMUTABLE_FIELDS))
    if frozen:
        raise CustomerFieldImmutable(
            "; ".join(f"{name} cannot change: {IMMUTABLE_FIELDS[name]}" for name in frozen),
            fields=frozen,
            errors=[_error(name, "cannot change once set", "immutable") for name in frozen],
        )


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The names whose value differs between two snapshots of a customer, sorted.

    >>> changed_fields({"name": "a", "email": None}, {"name": "b", "email": None})
    ['name']
    """
    return sorted(name for name in after if before.get(name) != after[name])


def _error(field: str, message: str, kind: str) -> dict[str, str]:
    return {"field": field, "message": message, "type": kind}
