"""The deployment's monthly cost budget, with an e-mail alert per threshold of actual spend.

Budgets are not once per account: the budget is the deployment's own, named `<deployment>-monthly` and
tagged in the create call. A rerun converges its limit and alerts in place. The Budgets API is global
(botocore sends it to budgets.amazonaws.com whatever the client's region).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code
from provision.errors import OwnershipConflict
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Step

# Alerts on actual (not forecast) spend above a percentage of the limit.
_ALERT = {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN", "ThresholdType": "PERCENTAGE"}


def _unless(codes: tuple[str, ...], call: Callable[[], Any]) -> None:
    """Run `call`; an error with one of `codes` means it is already done."""
    try:
        call()
    except Exception as exc:
        if error_code(exc) not in codes:
            raise


def _amount(usd: float) -> str:
    return f"{usd:.2f}".rstrip("0").rstrip(".")


class MonthlyBudget(Step):
    kind = "budgets.budget"
    produces = ("budget_name", "limit_usd", "notifications")

    def __init__(self, step_id: str, limit_usd: float, emails: tuple[str, ...], thresholds: tuple[float, ...]):
        super().__init__(step_id)
        self.limit_usd = float(limit_usd)
        self.emails = tuple(sorted(emails))
        self.thresholds = tuple(sorted(float(t) for t in thresholds))

    def budget_name(self, ctx: Context) -> str:
        return f"{ctx.deployment}-monthly"

    def _budget(self, ctx: Context) -> dict[str, Any]:
        return {
            "BudgetName": self.budget_name(ctx),
            "BudgetLimit": {"Amount": _amount(self.limit_usd), "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        }

    def _wanted(self) -> list[dict[str, Any]]:
        return [{"threshold": t, "emails": list(self.emails)} for t in self.thresholds]

    @staticmethod
    def _subscribers(emails: list[str]) -> list[dict[str, str]]:
        return [{"SubscriptionType": "EMAIL", "Address": e} for e in emails]

    def _alerts(self, ctx: Context) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The budget's notifications as AWS returns them, each with its threshold and e-mail subscribers."""
        budgets, account, name = aws.client(ctx, "budgets"), aws.account_id(ctx), self.budget_name(ctx)
        found = []
        pages = budgets.get_paginator("describe_notifications_for_budget").paginate(AccountId=account, BudgetName=name)
        for notification in (n for page in pages for n in page.get("Notifications", [])):
            subscribers = budgets.describe_subscribers_for_notification(AccountId=account, BudgetName=name, Notification=notification)["Subscribers"]
            ours = all(notification.get(k) == v for k, v in _ALERT.items())
            # Any other kind of alert (someone's, by hand) never matches a wanted one: converging replaces it.
            emails = sorted(s["Address"] for s in subscribers if s["SubscriptionType"] == "EMAIL") if ours else []
            found.append((notification, {"threshold": float(notification["Threshold"]), "emails": emails}))
        return sorted(found, key=lambda pair: pair[1]["threshold"])

    def find(self, ctx: Context) -> Outputs | None:
        budgets, account, name = aws.client(ctx, "budgets"), aws.account_id(ctx), self.budget_name(ctx)
        try:
            budget = budgets.describe_budget(AccountId=account, BudgetName=name)["Budget"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                return None
            raise
        arn = f"arn:aws:budgets::{account}:budget/{name}"
        tags = {t["Key"]: t["Value"] for t in budgets.list_tags_for_resource(ResourceARN=arn).get("ResourceTags", [])}
        if tags.get(TAG_DEPLOYMENT) != ctx.deployment:
            raise OwnershipConflict(f"budget {name} exists but is not tagged {TAG_DEPLOYMENT}={ctx.deployment}; rename the deployment or delete the budget")
        return {"budget_name": name, "limit_usd": float(budget["BudgetLimit"]["Amount"]), "notifications": [n for _, n in self._alerts(ctx)]}

    def create(self, ctx: Context) -> Outputs:
        budgets = aws.client(ctx, "budgets")
        try:
            budgets.create_budget(
                AccountId=aws.account_id(ctx),
                Budget=self._budget(ctx),
                NotificationsWithSubscribers=[
                    {"Notification": {**_ALERT, "Threshold": w["threshold"]}, "Subscribers": self._subscribers(w["emails"])} for w in self._wanted()
                ],
                ResourceTags=aws.tags(ctx, self.id),
            )
        except Exception as exc:
            # A retried create whose first response was lost: re-read (find refuses a budget not ours).
            if error_code(exc) == "DuplicateRecordException" and (found := self.find(ctx)) is not None:
                return found
            raise
        return {"budget_name": self.budget_name(ctx), "limit_usd": self.limit_usd, "notifications": self._wanted()}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        budgets, account, name = aws.client(ctx, "budgets"), aws.account_id(ctx), self.budget_name(ctx)
        if out["limit_usd"] != self.limit_usd:
            ctx.call(lambda: budgets.update_budget(AccountId=account, NewBudget=self._budget(ctx)), f"{self.id} limit")
        if out["notifications"] != self._wanted():
            wanted, kept = self._wanted(), []
            for notification, alert in ctx.call(lambda: self._alerts(ctx), f"{self.id} alerts"):
                if alert in wanted and alert not in kept:
                    kept.append(alert)
                    continue
                # Gone already (a retried call whose first response was lost) is done.
                ctx.call(
                    lambda n=notification: _unless(("NotFoundException",), lambda: budgets.delete_notification(AccountId=account, BudgetName=name, Notification=n)),
                    f"{self.id} remove alert at {alert['threshold']:g}%",
                )
            for alert in (w for w in wanted if w not in kept):
                ctx.call(
                    lambda a=alert: _unless(("DuplicateRecordException",), lambda: budgets.create_notification(
                        AccountId=account, BudgetName=name, Notification={**_ALERT, "Threshold": a["threshold"]}, Subscribers=self._subscribers(a["emails"]),
                    )),
                    f"{self.id} alert at {alert['threshold']:g}%",
                )
        return {"budget_name": name, "limit_usd": self.limit_usd, "notifications": self._wanted()}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return found["limit_usd"] != self.limit_usd or found["notifications"] != self._wanted()

    def delete(self, ctx: Context, out: Outputs) -> None:
        aws.client(ctx, "budgets").delete_budget(AccountId=aws.account_id(ctx), BudgetName=self.budget_name(ctx))

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        budgets, account, name = aws.client(ctx, "budgets"), aws.account_id(ctx), self.budget_name(ctx)
        ctx.wait_gone(lambda: budgets.describe_budget(AccountId=account, BudgetName=name), what=f"budget {name}")
