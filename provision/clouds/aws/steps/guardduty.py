"""The account's GuardDuty detector in the deployment's region: AWS allows one per account and region, so
one that exists is adopted (read, never modified, never deleted); otherwise this deployment creates its own,
tagged in the create call so that a crash before the checkpoint still leaves it recognisably ours."""

from __future__ import annotations

from typing import Any

from provision.clouds.aws import context as aws
from provision.clouds.aws.errors import error_code, parse
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context, Outputs, Step


def _detector_ids(gd: Any) -> list[str]:
    return [i for page in gd.get_paginator("list_detectors").paginate() for i in page.get("DetectorIds", [])]


class GuardDutyDetector(Step):
    kind = "guardduty.detector"
    produces = ("detector_id", "adopted", "status")

    def _ours(self, ctx: Context, tags: dict[str, str]) -> bool:
        return tags.get(TAG_DEPLOYMENT) == ctx.deployment and tags.get(TAG_STEP) == self.id

    def find(self, ctx: Context) -> Outputs | None:
        gd = aws.client(ctx, "guardduty")
        found = []
        for detector_id in _detector_ids(gd):
            detector = gd.get_detector(DetectorId=detector_id)
            found.append({"detector_id": detector_id, "adopted": not self._ours(ctx, detector.get("Tags") or {}), "status": detector.get("Status", "")})
        # One per account and region; should AWS ever list more, ours is the one this step owns.
        return min(found, key=lambda d: d["adopted"], default=None)

    def create(self, ctx: Context) -> Outputs:
        gd = aws.client(ctx, "guardduty")
        try:
            made = gd.create_detector(
                Enable=True,
                ClientToken=ctx.client_token(self.id),
                # Updated findings reach EventBridge every 15 minutes instead of AWS's default 6 hours.
                FindingPublishingFrequency="FIFTEEN_MINUTES",
                Tags={t["Key"]: t["Value"] for t in aws.tags(ctx, self.id)},
            )
        except Exception as exc:
            info = parse(exc)
            # Someone enabled GuardDuty since find: theirs is the region's detector now, and is adopted.
            if error_code(exc) == "BadRequestException" and info is not None and "already exists" in info.message:
                found = self.find(ctx)
                if found is not None:
                    return found
            raise
        return {"detector_id": made["DetectorId"], "adopted": False, "status": "ENABLED"}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        gd, detector_id = aws.client(ctx, "guardduty"), out["detector_id"]
        status = ctx.call(lambda: gd.get_detector(DetectorId=detector_id), f"{self.id} read").get("Status", "")
        if out["adopted"]:
            if status != "ENABLED":
                ctx.log.warning("the account's GuardDuty detector is suspended; adopted as it is", detector_id=detector_id, status=status)
            return {**out, "status": status}
        if status != "ENABLED":  # ours, suspended by hand: converge
            ctx.call(lambda: gd.update_detector(DetectorId=detector_id, Enable=True), f"{self.id} enable")
        return {**out, "status": "ENABLED"}

    def needs_converge(self, ctx: Context, found: Outputs) -> bool:
        return not found["adopted"] and found["status"] != "ENABLED"

    def _live_and_ours(self, ctx: Context, out: Outputs) -> bool:
        """Whether the detector still exists and carries this step's tags (adopted ones never do)."""
        gd = aws.client(ctx, "guardduty")
        if out.get("adopted", True) or out.get("detector_id") not in _detector_ids(gd):
            return False
        return self._ours(ctx, gd.get_detector(DetectorId=out["detector_id"]).get("Tags") or {})

    def delete(self, ctx: Context, out: Outputs) -> None:
        if not self._live_and_ours(ctx, out):
            if out.get("adopted"):
                ctx.log.info("leaving the account's GuardDuty detector in place (adopted)", detector_id=out.get("detector_id"))
            return
        aws.client(ctx, "guardduty").delete_detector(DetectorId=out["detector_id"])

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        if out.get("adopted", True):
            return
        gd, detector_id = aws.client(ctx, "guardduty"), out["detector_id"]
        ctx.wait_gone(lambda: detector_id if detector_id in _detector_ids(gd) else None, what=f"GuardDuty detector {detector_id}")
