"""What several gateway replicas agree on between them: who is alive, hence each one's
share of every vendor quota (``membership``)."""

from gateway.cluster.membership import Membership, QuotaShare, SoleReplica, sharing_quota

__all__ = ["Membership", "QuotaShare", "SoleReplica", "sharing_quota"]
