from __future__ import annotations

import pytest

from billing_common.currency import Currency
from billing_common.errors import BillingError
from billing_customers.domain import (
    IMMUTABLE_FIELDS,
    ISO_3166_ALPHA_2,
    TAX_ID_TYPES,
    BillToParentWithoutParent,
    CustomerFieldImmutable,
    CustomerHasChildren,
    DuplicateTaxId,
    HierarchyCycle,
    HierarchyMember,
    InvalidCountry,
    InvalidTaxIdType,
    InvalidTaxIdValue,
    ParentCurrencyMismatch,
    ParentIsChild,
    ParentNotFound,
    changed_fields,
    check_hierarchy,
    normalize_tax_id,
    normalize_tax_ids,
    refuse_immutable_fields,
    validate_country,
    validate_timezone,
)

USD = Currency.of("USD")
EUR = Currency.of("EUR")


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires"])
def test_known_timezones_pass(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize("name", ["Mars/Olympus", "europe/paris", "../etc/passwd", "", "+01:00"])
def test_unknown_timezones_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an IANA timezone"):
        validate_timezone(name)


class TestCountries:
    def test_the_standard_assigns_249_codes(self) -> None:
        assert len(ISO_3166_ALPHA_2) == 249
        assert all(len(code) == 2 and code.isupper() for code in ISO_3166_ALPHA_2)

    @pytest.mark.parametrize(("given", "expected"), [("FR", "FR"), ("us", "US"), ("Gb", "GB")])
    def test_codes_are_upper_cased(self, given: str, expected: str) -> None:
        assert validate_country(given) == expected

    @pytest.mark.parametrize("code", ["UK", "XK", "EU", "ZZ", "F", "FRA", ""])
    def test_unassigned_codes_are_refused_naming_the_field(self, code: str) -> None:
        with pytest.raises(InvalidCountry) as caught:
            validate_country(code)
        assert caught.value.code == "invalid_country"
        assert caught.value.status == 422
        assert caught.value.extensions["errors"][0]["field"] == "billing_address.country"


class TestTaxIds:
    @pytest.mark.parametrize("type_", sorted(TAX_ID_TYPES))
    def test_every_documented_example_has_its_shape(self, type_: str) -> None:
        example = TAX_ID_TYPES[type_].example
        assert normalize_tax_id(type_, example) == "".join(example.split()).upper()

    @pytest.mark.parametrize(
        ("type_", "value", "expected"),
        [
            ("eu_vat", "de 123 456 789", "DE123456789"),
            ("eu_vat", "EL123456789", "EL123456789"),
            ("gb_vat", "GB 123 4567 89", "GB123456789"),
            ("us_ein", "123456789", "123456789"),
            ("ch_vat", "CHE-123.456.789 TVA", "CHE-123.456.789TVA"),
        ],
    )
    def test_values_are_normalized(self, type_: str, value: str, expected: str) -> None:
        assert normalize_tax_id(type_, value) == expected

    @pytest.mark.parametrize("type_", ["vat", "EU_VAT", "fr_siren", ""])
    def test_unknown_types_are_refused(self, type_: str) -> None:
        with pytest.raises(InvalidTaxIdType) as caught:
            normalize_tax_id(type_, "DE123456789", field="tax_ids.2")
        assert caught.value.code == "invalid_tax_id_type"
        assert caught.value.extensions["errors"][0]["field"] == "tax_ids.2.type"
        assert "eu_vat" in caught.value.detail  # the message lists the known types

    @pytest.mark.parametrize(
        ("type_", "value"),
        [
            ("eu_vat", "US123456789"),  # not a member state
            ("eu_vat", "DE1"),
            ("gb_vat", "123456789"),  # no GB prefix
            ("us_ein", "12-345"),
            ("au_abn", "1234567891"),
            ("jp_trn", "1234567891234"),
        ],
    )
    def test_values_of_the_wrong_shape_are_refused(self, type_: str, value: str) -> None:
        with pytest.raises(InvalidTaxIdValue) as caught:
            normalize_tax_id(type_, value)
        assert caught.value.code == "invalid_tax_id_value"
        assert caught.value.extensions["errors"][0]["field"] == "tax_ids.0.value"

    def test_a_list_keeps_its_order_and_names_the_bad_position(self) -> None:
        assert normalize_tax_ids([("us_ein", "12-3456789"), ("eu_vat", "fr12345678901")]) == [
            ("us_ein", "12-3456789"),
            ("eu_vat", "FR12345678901"),
        ]
        with pytest.raises(InvalidTaxIdType) as caught:
            normalize_tax_ids([("us_ein", "12-3456789"), ("xx_vat", "1")])
        assert caught.value.extensions["errors"][0]["field"] == "tax_ids.1.type"

    def test_the_same_tax_id_twice_is_refused_after_normalizing(self) -> None:
        with pytest.raises(DuplicateTaxId) as caught:
            normalize_tax_ids([("eu_vat", "DE123456789"), ("eu_vat", "de 123456789")])
        assert caught.value.code == "duplicate_tax_id"
        assert caught.value.extensions["errors"][0]["field"] == "tax_ids.1"


def member(id_: str, parent_id: str | None = None, currency: Currency = USD) -> HierarchyMember:
    return HierarchyMember(id_, currency, parent_id)


class TestCheckHierarchy:
    def test_a_root_needs_nothing(self) -> None:
        check_hierarchy(member("a"), bill_to_parent=False, has_children=True, parent=None)

    @pytest.mark.parametrize("bill_to_parent", [True, False])
    def test_a_child_of_a_root_in_its_currency_is_accepted(self, bill_to_parent: bool) -> None:
        check_hierarchy(
            member("b", "a"), bill_to_parent=bill_to_parent, has_children=False, parent=member("a")
        )

    @pytest.mark.parametrize(
        ("customer", "bill_to_parent", "has_children", "parent", "error", "code"),
        [
            (
                member("a"),
                True,
                False,
                None,
                BillToParentWithoutParent,
                "customer_bill_to_parent_without_parent",
            ),
            (member("a", "a"), False, False, None, HierarchyCycle, "customer_hierarchy_cycle"),
            (
                member("a", "b"),
                False,
                True,
                member("b", "a"),
                HierarchyCycle,
                "customer_hierarchy_cycle",
            ),
            (member("b", "x"), False, False, None, ParentNotFound, "customer_parent_not_found"),
            (
                member("c", "b"),
                False,
                False,
                member("b", "a"),
                ParentIsChild,
                "customer_parent_is_child",
            ),
            (
                member("b", "a"),
                False,
                True,
                member("a"),
                CustomerHasChildren,
                "customer_has_children",
            ),
            (
                member("b", "a", EUR),
                False,
                False,
                member("a", currency=USD),
                ParentCurrencyMismatch,
                "customer_parent_currency_mismatch",
            ),
        ],
    )
    def test_each_broken_rule_has_its_code(
        self,
        customer: HierarchyMember,
        bill_to_parent: bool,
        has_children: bool,
        parent: HierarchyMember | None,
        error: type[BillingError],
        code: str,
    ) -> None:
        with pytest.raises(error) as caught:
            check_hierarchy(
                customer, bill_to_parent=bill_to_parent, has_children=has_children, parent=parent
            )
        assert caught.value.code == code
        assert caught.value.status == 422
        assert caught.value.extensions["errors"][0]["field"] in {"parent_id", "bill_to_parent"}


class TestUpdates:
    def test_currency_is_immutable_and_says_why(self) -> None:
        assert set(IMMUTABLE_FIELDS) == {"currency"}
        with pytest.raises(CustomerFieldImmutable, match="currency cannot change") as caught:
            refuse_immutable_fields(["name", "currency"])
        assert caught.value.code == "customer_field_immutable"
        assert caught.value.extensions["fields"] == ["currency"]

    def test_mutable_fields_pass(self) -> None:
        refuse_immutable_fields(["name", "external_id", "parent_id"])

    def test_changed_fields_are_the_differing_ones_sorted(self) -> None:
        before: dict[str, object] = {"name": "a", "email": None, "tax_ids": [], "timezone": "UTC"}
        after = {"name": "b", "email": None, "tax_ids": [{"type": "us_ein"}], "timezone": "UTC"}
        assert changed_fields(before, after) == ["name", "tax_ids"]
        assert changed_fields(before, dict(before)) == []
