"""Speaker authentication on a hybrid RSNN: a registry of speakers and their lifecycle.

The backbone is trained once (digitally), written into crossbars once, and never rewritten: enrolling
and revoking speakers and repairing the array all happen in named LoRA branches.  Every operation is
recorded in a hash-chained audit log; state is saved as crash-safe snapshots with no pickles.

Split by job: ``registry`` (who is enrolled, buffers, the checks), ``scoring`` (scores, threshold,
verify), ``persistence`` (save, load) and ``lifecycle`` (the operations, ``SpeakerAuthenticator``).
"""

from neuro_rm.auth.lifecycle import SpeakerAuthenticator
from neuro_rm.auth.persistence import STATE_FORMAT, UnsetPolicyWarning
from neuro_rm.auth.registry import ENROLLED, REVOKE_MODES, REVOKED, Buffers, OperationReport, SpeakerRecord

__all__ = ["ENROLLED", "REVOKED", "REVOKE_MODES", "STATE_FORMAT", "Buffers", "OperationReport", "SpeakerAuthenticator",
           "SpeakerRecord", "UnsetPolicyWarning"]
