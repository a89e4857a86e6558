"""MIT saliency benchmark metrics, CAT2000 reading, saliency evaluation.

Every metric is `metric(saliency_map, truth)` on 2-D arrays: `truth` is the
binary fixation map for the AUCs and NSS, the fixation density map for CC,
similarity, KL divergence and EMD (see `location` and `distribution`).
"""

from sact_tf.saliency.distribution import cc
from sact_tf.saliency.distribution import emd
from sact_tf.saliency.distribution import kl_divergence
from sact_tf.saliency.distribution import similarity
from sact_tf.saliency.location import auc_borji
from sact_tf.saliency.location import auc_judd
from sact_tf.saliency.location import nss
from sact_tf.saliency.location import shuffled_auc
