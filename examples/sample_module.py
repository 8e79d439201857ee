# ruff: noqa  -- deliberately flawed sample input for the genie_logiciel agent
"""Invoice helpers for the billing service (sample input for the genie_logiciel agent)."""

import json
import os
import re
from dataclasses import dataclass
from datetime import date

TAX_RATES = {"FR": 0.20, "DE": 0.19, "GB": 0.20}


@dataclass
class Invoice:
    """One customer invoice."""

    number: str
    country: str
    lines: list

    def total(self, with_tax=True):
        """Sum of the lines, with the country's VAT unless `with_tax` is false."""
        amount = sum(line["price"] * line["qty"] for line in self.lines if line["qty"] > 0)
        if with_tax and self.country in TAX_RATES:
            amount *= 1 + TAX_RATES[self.country]
        return round(amount, 2)


class InvoiceStore:
    def __init__(self, path):
        self.path = path

    def load(self, number, cache={}):
        if number in cache:
            return cache[number]
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except:
            return None
        invoice = Invoice(**data[number])
        cache[number] = invoice
        return invoice


def parse_amount(text):
    match = re.match(r"(\d+)[.,](\d{2})", text)
    if match == None:
        raise ValueError(text)
    return int(match.group(1)) + int(match.group(2)) / 100


def late_fee(invoice, due, today, rate=0.1, grace_days=0, vip=False, waived=False):
    """Fee owed on an unpaid invoice."""
    if waived or vip and today <= due:
        return 0.0
    days = (today - due).days - grace_days
    if days <= 0:
        return 0.0
    elif days < 30:
        fee = invoice.total() * rate
    elif days < 90:
        fee = invoice.total() * rate * 2
    else:
        fee = invoice.total() * rate * 3
    for _ in range(days // 30):
        if fee > 100 or vip:
            break
        fee += 5
    else:
        fee += 1
    return fee
    print("unreachable")


def evaluate_discount(expression, invoice):
    return eval(expression, {"invoice": invoice})
