from __future__ import annotations

import doctest
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_common.currency import Currency
from billing_common.errors import CurrencyMismatch
from billing_common.ids import CustomerId, InvoiceId, PlanId
from billing_common.money import Money, RoundingMode
from billing_common.tax import NoTax, RateTableTax, TaxTreatment
from billing_invoicing import domain
from billing_invoicing.domain import (
    TRANSITIONS,
    AppliedCoupon,
    BaseFeeCharge,
    ChargeSet,
    ChildRef,
    CouponInvalid,
    FeeTiming,
    InvalidInvoiceLine,
    InvalidInvoiceTransition,
    Invoice,
    InvoiceAction,
    InvoiceInputs,
    InvoiceNotEditable,
    InvoiceStatus,
    LineKind,
    MinimumCommitment,
    OneOffCharge,
    TaxContext,
    UnknownChild,
    UsageCharge,
    add_one_off_line,
    apply_discounts,
    build_invoice,
    charges_from_effects,
    finalize,
    mark_paid,
    refresh_usage,
    usage_charges,
    void,
)
from billing_invoicing.numbering import InvalidInvoiceNumber
from billing_pricing.domain import CouponTerms, apply_coupons
from billing_pricing.schemas import CouponDuration
from billing_rating.domain import (
    BillingTiming,
    Charge,
    Graduated,
    Package,
    Period,
    PerUnit,
    PriceSheet,
    Tier,
    Usage,
    UsageRecord,
    rate_all,
)
from billing_subscriptions.domain import Plan, change_plan, start_subscription
from billing_subscriptions.periods import Anchor, Interval
from billing_subscriptions.policy import SubscriptionPolicy

FAST = settings(database=None, deadline=None, max_examples=100)
USD = Currency.of("USD")
CUSTOMER = CustomerId.new()
INVOICE = InvoiceId.new()
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
NO_TAX = NoTax()
US_CA = TaxContext(country="US", region="CA")
CA_TAX = RateTableTax({("US", "CA"): Decimal("0.0725")})


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def draft(
    inputs: InvoiceInputs,
    tax: NoTax | RateTableTax = NO_TAX,
    context: TaxContext = US_CA,
    rounding: RoundingMode = RoundingMode.HALF_UP,
) -> Invoice:
    return build_invoice(
        invoice_id=INVOICE,
        customer_id=CUSTOMER,
        currency=USD,
        period_start=JAN,
        period_end=FEB,
        inputs=inputs,
        tax_context=context,
        tax=tax,
        rounding=rounding,
    )


def monthly_usage() -> tuple[UsageCharge, ...]:
    """Graduated API calls and packaged storage for January, rated by rating's `rate_all`."""
    sheet = PriceSheet(
        USD,
        [
            Charge(
                "api",
                "api_calls",
                Graduated(
                    [
                        Tier(Decimal(0), Decimal(1000), usd("0.01")),
                        Tier(Decimal(1000), Decimal(10000), usd("0.008"), flat_fee=usd("2")),
                        Tier(Decimal(10000), None, usd("0.005")),
                    ]
                ),
            ),
            Charge(
                "storage",
                "storage_gb",
                Package(Decimal(100), usd("5"), free_units=Decimal(100)),
            ),
        ],
    )
    usage = Usage(
        [
            UsageRecord("api_calls", {}, Decimal(12345)),
            UsageRecord("storage_gb", {}, Decimal(1050)),
        ]
    )
    return usage_charges(rate_all(sheet, usage, Period(JAN, FEB)))


BASE_FEE = BaseFeeCharge("plan_pro", usd("49"), FEB, MAR, FeeTiming.IN_ADVANCE)


def monthly_inputs(
    *,
    coupons: tuple[AppliedCoupon, ...] = (),
    one_offs: tuple[OneOffCharge, ...] = (),
    minimum_commitment: MinimumCommitment | None = None,
) -> InvoiceInputs:
    return InvoiceInputs(
        own=ChargeSet(base_fees=(BASE_FEE,), usage=monthly_usage()),
        coupons=coupons,
        one_offs=one_offs,
        minimum_commitment=minimum_commitment,
    )


def test_doctests() -> None:
    assert doctest.testmod(domain).failed == 0


class TestMonthlyPlan:
    """49 USD in advance; 12,345 API calls graduated; 1,050 GB in packages.

    API: 1,000 x 0.01 = 10; 9,000 x 0.008 + 2 = 74; 2,345 x 0.005 = 11.725;
    95.725 USD, rounded half-up once to 95.73. Storage: 100 free, 950 units in
    packages of 100 = 10 packages x 5 = 50 USD. Subtotal 49 + 95.73 + 50 = 194.73.
    """

    def test_lines_and_totals(self) -> None:
        invoice = draft(monthly_inputs())
        assert [(line.kind, line.amount) for line in invoice.lines] == [
            (LineKind.BASE_FEE, usd("49")),
            (LineKind.USAGE, usd("95.73")),
            (LineKind.USAGE, usd("50")),
        ]
        assert invoice.lines[1].exact_amount == usd("95.725")
        assert [line.line_id for line in invoice.lines] == ["line_1", "line_2", "line_3"]
        assert invoice.subtotal == usd("194.73")
        assert invoice.discount_total == usd("0")
        assert invoice.tax_total == usd("0")
        assert invoice.total == usd("194.73")
        assert invoice.status is InvoiceStatus.DRAFT
        assert invoice.number is None

    def test_tier_breakdown_is_kept(self) -> None:
        api = draft(monthly_inputs()).lines[1]
        assert api.usage is not None
        assert api.usage.quantity == Decimal(12345)
        assert [tier.amount for tier in api.usage.tiers] == [
            usd("10"),
            usd("74"),
            usd("11.725"),
        ]
        assert [tier.units for tier in api.usage.tiers] == [
            Decimal(1000),
            Decimal(9000),
            Decimal(2345),
        ]
        assert api.details[1:] == tuple(f"  {tier.explanation}" for tier in api.usage.tiers)
        assert "tier 2 (1000, 10000]: 9000 x 0.008 USD + flat 2 USD = 74 USD" in api.details[2]
        storage = draft(monthly_inputs()).lines[2]
        assert storage.usage is not None
        assert "10 packages of 100 units x 5 USD = 50 USD" in storage.details[0]

    def test_base_fee_explains_its_timing(self) -> None:
        line = draft(monthly_inputs()).lines[0]
        assert line.details == ("billed in advance for 2026-02-01 to 2026-03-01",)
        arrears = BaseFeeCharge("plan_pro", usd("49"), JAN, FEB, FeeTiming.ARREARS)
        invoice = draft(InvoiceInputs(own=ChargeSet(base_fees=(arrears,))))
        assert invoice.lines[0].details == ("billed in arrears for 2026-01-01 to 2026-02-01",)

    def test_rounding_mode_is_the_invoices(self) -> None:
        invoice = draft(monthly_inputs(), rounding=RoundingMode.HALF_EVEN)
        assert invoice.lines[1].amount == usd("95.72")  # 95.725: a tie goes to the even cent
        assert invoice.total == usd("194.72")

    def test_in_advance_usage_is_billed_at_the_period_close(self) -> None:
        sheet = PriceSheet(
            USD, [Charge("seats", "seats", PerUnit(usd("2")), timing=BillingTiming.IN_ADVANCE)]
        )
        rated = rate_all(sheet, Usage([UsageRecord("seats", {}, Decimal(3))]), Period(JAN, FEB))
        [charge] = usage_charges(rated)
        assert charge.amount == usd("6")

    def test_zero_invoice(self) -> None:
        invoice = draft(InvoiceInputs())
        assert invoice.lines == ()
        assert invoice.total == usd("0")


class TestProration:
    def test_mid_period_upgrade(self) -> None:
        """Basic 30 USD -> Pro 60 USD on 11 April 10:00: 20 of 30 days remain.

        Credit -30 x 20/30 = -20; charge 60 x 20/30 = 40; net 20.
        """
        policy = SubscriptionPolicy()
        basic = Plan(PlanId("plan_basic"), usd("30"), Interval.MONTH)
        pro = Plan(PlanId("plan_pro"), usd("60"), Interval.MONTH)
        april = datetime(2024, 4, 1, tzinfo=UTC)
        sub = start_subscription(basic, Anchor.CALENDAR, "UTC", april, policy).subscription
        upgrade = change_plan(sub, pro, datetime(2024, 4, 11, 10, tzinfo=UTC), policy)
        fees, prorations = charges_from_effects(upgrade.effects)
        assert fees == ()
        invoice = draft(InvoiceInputs(own=ChargeSet(prorations=prorations)))
        assert [(line.kind, line.amount) for line in invoice.lines] == [
            (LineKind.PRORATION, usd("-20")),
            (LineKind.PRORATION, usd("40")),
        ]
        credit, charge = invoice.lines
        assert credit.description == "Unused time on plan plan_basic"
        assert charge.description == "Remaining time on plan plan_pro"
        assert credit.details == (
            "prorated credit (unused_time) for 2024-04-11T10:00:00+00:00 to 2024-05-01: -20 USD",
        )
        assert invoice.total == usd("20")

    def test_period_fee_effect_is_a_base_fee(self) -> None:
        policy = SubscriptionPolicy()
        basic = Plan(PlanId("plan_basic"), usd("30"), Interval.MONTH)
        started = start_subscription(basic, Anchor.CALENDAR, "UTC", JAN, policy)
        fees, prorations = charges_from_effects(started.effects, FeeTiming.IN_ADVANCE)
        assert prorations == ()
        assert [(fee.plan_id, fee.amount, fee.service_start) for fee in fees] == [
            ("plan_basic", usd("30"), JAN)
        ]


class TestCoupons:
    def test_percentage_then_fixed(self) -> None:
        """194.73: 10 % = 19.473 -> 19.47 (left 175.26); then 15 off: total 160.26.

        The 34.47 discount is spread over 49 / 95.73 / 50 in cents by largest
        remainder: 3447 x 4900/19473 = 867.37, x 9573/19473 = 1694.56,
        x 5000/19473 = 885.07; floors 867 + 1694 + 885 = 3446, the cent left goes to
        the largest remainder (.56): 8.67, 16.95, 8.85.
        """
        coupons = (
            AppliedCoupon("WELCOME", amount_off=usd("15")),
            AppliedCoupon("TEN", percent_off=Decimal(10)),
        )
        invoice = draft(monthly_inputs(coupons=coupons))
        assert [(d.coupon_code, d.amount) for d in invoice.discounts] == [
            ("TEN", usd("19.47")),
            ("WELCOME", usd("15")),
        ]
        assert invoice.discount_total == usd("34.47")
        assert [line.discount for line in invoice.lines] == [
            usd("8.67"),
            usd("16.95"),
            usd("8.85"),
        ]
        assert invoice.total == usd("160.26")
        assert invoice.lines[1].details[-1] == (
            "discount 16.95 USD (share of the invoice's coupons)"
        )

    def test_coupons_with_tax(self) -> None:
        """Tax at 7.25 % on the discounted lines: 40.33 -> 2.923925 -> 2.92;
        78.78 -> 5.71155 -> 5.71; 41.15 -> 2.983375 -> 2.98; 11.61 in all."""
        coupons = (
            AppliedCoupon("TEN", percent_off=Decimal(10)),
            AppliedCoupon("WELCOME", amount_off=usd("15")),
        )
        invoice = draft(monthly_inputs(coupons=coupons), tax=CA_TAX)
        assert [line.taxable_amount for line in invoice.lines] == [
            usd("40.33"),
            usd("78.78"),
            usd("41.15"),
        ]
        assert [line.tax for line in invoice.lines] == [usd("2.92"), usd("5.71"), usd("2.98")]
        assert invoice.tax_total == usd("11.61")
        assert invoice.total == usd("171.87")

    def test_fixed_coupon_never_goes_below_zero(self) -> None:
        one_off = OneOffCharge("Setup", usd("10"))
        invoice = draft(
            InvoiceInputs(
                one_offs=(one_off,), coupons=(AppliedCoupon("BIG", amount_off=usd("25")),)
            )
        )
        assert invoice.discounts[0].amount == usd("10")
        assert invoice.total == usd("0")

    def test_credit_subtotal_is_not_discounted(self) -> None:
        one_off = OneOffCharge("Goodwill", usd("-10"))
        invoice = draft(
            InvoiceInputs(
                one_offs=(one_off,), coupons=(AppliedCoupon("TEN", percent_off=Decimal(10)),)
            )
        )
        assert invoice.discount_total == usd("0")
        assert invoice.total == usd("-10")
        assert invoice.credit_balance == usd("10")
        assert invoice.amount_due == usd("0")

    def test_invalid_coupons(self) -> None:
        with pytest.raises(CouponInvalid):
            AppliedCoupon("X")
        with pytest.raises(CouponInvalid):
            AppliedCoupon("X", percent_off=Decimal(101))
        with pytest.raises(CouponInvalid):
            AppliedCoupon("X", percent_off=Decimal(10), amount_off=usd("1"))
        with pytest.raises(CouponInvalid):
            AppliedCoupon("X", amount_off=usd("0"))
        with pytest.raises(CurrencyMismatch):
            apply_discounts(
                usd("10"),
                [AppliedCoupon("EUR", amount_off=Money.parse("1", "EUR"))],
                RoundingMode.HALF_UP,
            )

    def test_sub_cent_fixed_coupon_is_rounded(self) -> None:
        lines = apply_discounts(
            usd("10"), [AppliedCoupon("ODD", amount_off=usd("0.005"))], RoundingMode.HALF_UP
        )
        assert lines[0].amount == usd("0.01")

    @FAST
    @given(
        subtotal=st.integers(min_value=-(10**16), max_value=10**17),
        coupons=st.lists(
            st.one_of(
                st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
                # any pico amount: both round a sub-cent amount_off (one implementation)
                st.integers(min_value=1, max_value=10**16),
            ),
            max_size=4,
        ),
        rounding=st.sampled_from(list(RoundingMode)),
    )
    def test_same_as_pricing_apply_coupons(
        self, subtotal: int, coupons: list[Decimal | int], rounding: RoundingMode
    ) -> None:
        """Invoicing and pricing share billing-common's arithmetic: they must agree."""
        ours = [
            AppliedCoupon(f"C{i}", percent_off=c)
            if isinstance(c, Decimal)
            else AppliedCoupon(f"C{i}", amount_off=Money(c, USD))
            for i, c in enumerate(coupons)
        ]
        theirs = [
            CouponTerms(f"C{i}", c, None, CouponDuration.FOREVER)
            if isinstance(c, Decimal)
            else CouponTerms(f"C{i}", None, Money(c, USD), CouponDuration.FOREVER)
            for i, c in enumerate(coupons)
        ]
        expected = apply_coupons(Money(subtotal, USD), theirs, period_index=0, rounding=rounding)
        got = apply_discounts(Money(subtotal, USD), ours, rounding)
        assert [(d.coupon_code, d.amount) for d in got] == [
            (d.coupon_code, d.amount) for d in expected.discounts
        ]


class TestMinimumCommitment:
    def test_true_up(self) -> None:
        """Commitment 250; base fee, usage and proration billed 194.73: true-up 55.27.

        A one-off setup fee of 100 does not count toward the commitment.
        """
        inputs = monthly_inputs(
            minimum_commitment=MinimumCommitment(usd("250")),
            one_offs=(OneOffCharge("Setup", usd("100")),),
        )
        invoice = draft(inputs)
        assert [(line.kind, line.amount) for line in invoice.lines] == [
            (LineKind.BASE_FEE, usd("49")),
            (LineKind.USAGE, usd("95.73")),
            (LineKind.USAGE, usd("50")),
            (LineKind.MINIMUM_COMMITMENT, usd("55.27")),
            (LineKind.ONE_OFF, usd("100")),
        ]
        assert invoice.lines[3].details == (
            "minimum 250 USD: charges billed 194.73 USD, true-up 55.27 USD",
        )
        assert invoice.total == usd("350")

    def test_no_true_up_when_reached(self) -> None:
        invoice = draft(monthly_inputs(minimum_commitment=MinimumCommitment(usd("150"))))
        assert LineKind.MINIMUM_COMMITMENT not in {line.kind for line in invoice.lines}
        assert invoice.total == usd("194.73")

    def test_sub_cent_commitment_rounds_once(self) -> None:
        invoice = draft(monthly_inputs(minimum_commitment=MinimumCommitment(usd("200.005"))))
        true_up = invoice.lines[-1]
        assert true_up.exact_amount == usd("5.275")
        assert true_up.amount == usd("5.28")


class TestTax:
    def test_rate_table_tax(self) -> None:
        """7.25 % per line, each rounded half-up once: 49 -> 3.5525 -> 3.55;
        95.73 -> 6.940425 -> 6.94; 50 -> 3.625 -> 3.63. Tax 14.12, total 208.85."""
        invoice = draft(monthly_inputs(), tax=CA_TAX)
        assert [line.tax for line in invoice.lines] == [usd("3.55"), usd("6.94"), usd("3.63")]
        assert all(line.tax_rate == Decimal("0.0725") for line in invoice.lines)
        assert all(line.tax_treatment is TaxTreatment.TAXED for line in invoice.lines)
        assert invoice.tax_jurisdiction == "US-CA"
        assert invoice.tax_total == usd("14.12")
        assert invoice.total == usd("208.85")

    def test_exempt_and_reverse_charge(self) -> None:
        exempt = draft(monthly_inputs(), tax=CA_TAX, context=TaxContext("US", "CA", exempt=True))
        assert exempt.tax_total == usd("0")
        assert {line.tax_treatment for line in exempt.lines} == {TaxTreatment.EXEMPT}
        reverse = draft(
            monthly_inputs(),
            tax=RateTableTax({("DE", None): Decimal("0.19")}),
            context=TaxContext("DE", reverse_charge=True, tax_ids=("DE123456789",)),
        )
        assert reverse.tax_total == usd("0")
        assert {line.tax_treatment for line in reverse.lines} == {TaxTreatment.REVERSE_CHARGE}

    def test_proration_credit_carries_negative_tax(self) -> None:
        credit = domain.ProrationCharge("plan_basic", "unused_time", usd("-20"), JAN, FEB)
        invoice = draft(
            InvoiceInputs(own=ChargeSet(base_fees=(BASE_FEE,), prorations=(credit,))), tax=CA_TAX
        )
        assert [line.tax for line in invoice.lines] == [usd("3.55"), usd("-1.45")]
        assert invoice.total == usd("31.10")


class TestChildren:
    def test_parent_with_two_children(self) -> None:
        """Parent base fee 100; Acme EU: 1,500 x 0.002 = 3; Acme US: base fee 20 and
        1,234.5 x 0.0035 = 4.32075 -> 4.32. Total 127.32."""
        eu = ChildRef(CustomerId.new(), "Acme EU")
        us = ChildRef(CustomerId.new(), "Acme US")
        sheet_eu = PriceSheet(USD, [Charge("api", "api_calls", PerUnit(usd("0.002")))])
        sheet_us = PriceSheet(USD, [Charge("api", "api_calls", PerUnit(usd("0.0035")))])
        usage_eu = usage_charges(
            rate_all(
                sheet_eu, Usage([UsageRecord("api_calls", {}, Decimal(1500))]), Period(JAN, FEB)
            )
        )
        usage_us = usage_charges(
            rate_all(
                sheet_us, Usage([UsageRecord("api_calls", {}, Decimal("1234.5"))]), Period(JAN, FEB)
            )
        )
        inputs = InvoiceInputs(
            own=ChargeSet(base_fees=(BaseFeeCharge("plan_parent", usd("100"), JAN, FEB),)),
            children=(
                ChargeSet(usage=usage_eu, child=eu),
                ChargeSet(
                    base_fees=(BaseFeeCharge("plan_team", usd("20"), JAN, FEB),),
                    usage=usage_us,
                    child=us,
                ),
            ),
        )
        invoice = draft(inputs)
        assert [(line.description, line.amount, line.child) for line in invoice.lines] == [
            ("Base fee, plan plan_parent", usd("100"), None),
            ("Acme EU: Usage, api", usd("3"), eu),
            ("Acme US: Base fee, plan plan_team", usd("20"), us),
            ("Acme US: Usage, api", usd("4.32"), us),
        ]
        assert invoice.total == usd("127.32")

        refreshed = refresh_usage(invoice, (), NO_TAX, child=eu.customer_id)
        assert refreshed.total == usd("124.32")
        with pytest.raises(UnknownChild):
            refresh_usage(invoice, (), NO_TAX, child=CustomerId.new())

    def test_children_must_be_named_once(self) -> None:
        child = ChildRef(CustomerId.new(), "A")
        with pytest.raises(InvalidInvoiceLine):
            InvoiceInputs(children=(ChargeSet(),))
        with pytest.raises(InvalidInvoiceLine):
            InvoiceInputs(children=(ChargeSet(child=child), ChargeSet(child=child)))
        with pytest.raises(InvalidInvoiceLine):
            InvoiceInputs(own=ChargeSet(child=child))


class TestDraftEditing:
    def test_add_one_off_line_recomputes(self) -> None:
        invoice = draft(monthly_inputs(), tax=CA_TAX)
        edited = add_one_off_line(
            invoice, OneOffCharge("Training", usd("12.345"), Decimal(2)), CA_TAX
        )
        last = edited.lines[-1]
        assert (last.kind, last.exact_amount, last.amount) == (
            LineKind.ONE_OFF,
            usd("24.69"),
            usd("24.69"),
        )
        assert last.tax == usd("1.79")  # 24.69 x 0.0725 = 1.790025
        assert edited.total == usd("208.85") + usd("24.69") + usd("1.79")
        assert invoice.lines != edited.lines  # the original value is untouched

    def test_refresh_usage_updates_true_up(self) -> None:
        inputs = monthly_inputs(minimum_commitment=MinimumCommitment(usd("250")))
        invoice = draft(inputs)
        refreshed = refresh_usage(invoice, (), NO_TAX)
        assert [line.amount for line in refreshed.lines] == [usd("49"), usd("201")]
        assert refreshed.total == usd("250")

    def test_currency_mismatch(self) -> None:
        with pytest.raises(CurrencyMismatch):
            draft(InvoiceInputs(one_offs=(OneOffCharge("x", Money.parse("1", "EUR")),)))

    def test_invalid_inputs(self) -> None:
        with pytest.raises(InvalidInvoiceLine):
            OneOffCharge(" ", usd("1"))
        with pytest.raises(InvalidInvoiceLine):
            OneOffCharge("x", usd("1"), Decimal(0))
        with pytest.raises(TypeError):
            OneOffCharge("x", usd("1"), 1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidInvoiceLine):
            BaseFeeCharge("p", usd("-1"), JAN, FEB)
        with pytest.raises(InvalidInvoiceLine):
            BaseFeeCharge("p", usd("1"), FEB, JAN)
        with pytest.raises(InvalidInvoiceLine):
            MinimumCommitment(usd("-1"))


# -- lifecycle -------------------------------------------------------------------------------

AT = datetime(2026, 2, 1, 9, tzinfo=UTC)
NUMBER = "INV-2026-000042"


def in_status(status: InvoiceStatus) -> Invoice:
    invoice = draft(monthly_inputs())
    if status is InvoiceStatus.DRAFT:
        return invoice
    if status is InvoiceStatus.VOID:
        return void(invoice, AT)
    invoice = finalize(invoice, NUMBER, AT)
    return mark_paid(invoice, AT) if status is InvoiceStatus.PAID else invoice


class TestLifecycle:
    def test_draft_finalized_paid(self) -> None:
        finalized = finalize(draft(monthly_inputs()), NUMBER, AT)
        assert (finalized.status, finalized.number, finalized.finalized_at) == (
            InvoiceStatus.FINALIZED,
            NUMBER,
            AT,
        )
        assert finalized.paid_at is None
        paid = mark_paid(finalized, datetime(2026, 2, 3, tzinfo=UTC))
        assert paid.status is InvoiceStatus.PAID
        assert paid.paid_at == datetime(2026, 2, 3, tzinfo=UTC)
        assert paid.lines == finalized.lines

    def test_draft_and_finalized_can_be_voided(self) -> None:
        voided_draft = void(draft(monthly_inputs()), AT)
        assert (voided_draft.status, voided_draft.number) == (InvoiceStatus.VOID, None)
        voided = void(in_status(InvoiceStatus.FINALIZED), AT)
        assert (voided.status, voided.number, voided.voided_at) == (
            InvoiceStatus.VOID,
            NUMBER,
            AT,
        )

    def test_zero_total_is_paid_at_finalize(self) -> None:
        paid = finalize(draft(InvoiceInputs()), NUMBER, AT)
        assert (paid.status, paid.paid_at, paid.number) == (InvoiceStatus.PAID, AT, NUMBER)

    def test_credit_total_is_paid_at_finalize(self) -> None:
        credit = draft(InvoiceInputs(one_offs=(OneOffCharge("Goodwill", usd("-5")),)))
        assert finalize(credit, NUMBER, AT).status is InvoiceStatus.PAID

    @pytest.mark.parametrize("status", list(InvoiceStatus))
    @pytest.mark.parametrize("action", list(InvoiceAction))
    def test_every_transition(self, status: InvoiceStatus, action: InvoiceAction) -> None:
        invoice = in_status(status)
        allowed = {source for source, _ in TRANSITIONS[action]}
        runs: dict[InvoiceAction, Callable[[], Invoice]] = {
            InvoiceAction.FINALIZE: lambda: finalize(invoice, NUMBER, AT),
            InvoiceAction.MARK_PAID: lambda: mark_paid(invoice, AT),
            InvoiceAction.VOID: lambda: void(invoice, AT),
        }
        run = runs[action]
        if status in allowed:
            after = run()
            assert (status, after.status) in TRANSITIONS[action]
        else:
            with pytest.raises(InvalidInvoiceTransition) as raised:
                run()
            assert raised.value.status == 409
            assert raised.value.code == "invalid_invoice_transition"
            assert raised.value.extensions["from_status"] == status.value

    def test_allowed_moves(self) -> None:
        assert {(a, s, t) for a, moves in TRANSITIONS.items() for s, t in moves} == {
            (InvoiceAction.FINALIZE, InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED),
            (InvoiceAction.FINALIZE, InvoiceStatus.DRAFT, InvoiceStatus.PAID),
            (InvoiceAction.MARK_PAID, InvoiceStatus.FINALIZED, InvoiceStatus.PAID),
            (InvoiceAction.VOID, InvoiceStatus.DRAFT, InvoiceStatus.VOID),
            (InvoiceAction.VOID, InvoiceStatus.FINALIZED, InvoiceStatus.VOID),
        }

    @pytest.mark.parametrize(
        "status", [InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.VOID]
    )
    def test_only_a_draft_is_editable(self, status: InvoiceStatus) -> None:
        invoice = in_status(status)
        with pytest.raises(InvoiceNotEditable) as raised:
            add_one_off_line(invoice, OneOffCharge("x", usd("1")), NO_TAX)
        assert (raised.value.status, raised.value.code) == (409, "invoice_not_editable")
        with pytest.raises(InvoiceNotEditable):
            refresh_usage(invoice, (), NO_TAX)

    def test_finalize_needs_a_valid_number_and_aware_instant(self) -> None:
        with pytest.raises(InvalidInvoiceNumber):
            finalize(draft(monthly_inputs()), "42", AT)
        with pytest.raises(InvalidInvoiceLine):
            finalize(draft(monthly_inputs()), NUMBER, datetime(2026, 2, 1))


# -- properties ------------------------------------------------------------------------------

amounts = st.integers(min_value=-(10**15), max_value=10**16).map(lambda pico: Money(pico, USD))
coupons = st.lists(
    st.one_of(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2).map(
            lambda p: AppliedCoupon("P", percent_off=p)
        ),
        st.integers(min_value=1, max_value=10**16).map(
            lambda pico: AppliedCoupon("F", amount_off=Money(pico, USD))
        ),
    ),
    max_size=3,
)


@FAST
@given(
    one_offs=st.lists(amounts, max_size=8),
    fees=st.lists(st.integers(min_value=0, max_value=10**16), max_size=3),
    applied=coupons,
    rate=st.decimals(min_value=Decimal(0), max_value=Decimal("0.3"), places=4),
    minimum=st.none() | st.integers(min_value=0, max_value=10**17),
    rounding=st.sampled_from(list(RoundingMode)),
)
def test_totals_are_sums_of_lines(
    one_offs: list[Money],
    fees: list[int],
    applied: list[AppliedCoupon],
    rate: Decimal,
    minimum: int | None,
    rounding: RoundingMode,
) -> None:
    inputs = InvoiceInputs(
        own=ChargeSet(base_fees=tuple(BaseFeeCharge("p", Money(f, USD), JAN, FEB) for f in fees)),
        one_offs=tuple(OneOffCharge(f"item {i}", amount) for i, amount in enumerate(one_offs)),
        coupons=tuple(applied),
        minimum_commitment=None if minimum is None else MinimumCommitment(Money(minimum, USD)),
    )
    invoice = draft(inputs, tax=RateTableTax({("US", None): rate}), rounding=rounding)
    unit = USD.pico_per_minor_unit
    for line in invoice.lines:
        assert line.amount.amount % unit == 0
        assert line.tax_amount.amount % unit == 0
        assert line.discount_amount.amount % unit == 0
        assert line.amount == line.exact_amount.round_to_minor(rounding)
        assert Money.zero(USD) <= line.discount_amount
        if line.discount_amount.is_positive():
            assert line.discount_amount <= line.amount
    assert invoice.subtotal == sum((line.amount for line in invoice.lines), Money.zero(USD))
    assert invoice.discount_total == sum(
        (line.discount_amount for line in invoice.lines), Money.zero(USD)
    )
    assert invoice.tax_total == sum((line.tax_amount for line in invoice.lines), Money.zero(USD))
    assert invoice.total == sum((line.total for line in invoice.lines), Money.zero(USD))
    assert invoice.total == invoice.subtotal - invoice.discount_total + invoice.tax_total
    assert invoice.discount_total <= max(invoice.subtotal, Money.zero(USD))
