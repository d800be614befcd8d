"""A cued task that gives the attention region a reason to use a cue, and no way to cheat with it.

Present/absent detection of a named class in a search array (`stimuli.detection_arrays`):
"is there a <question> in this array?", half the arrays holding one. The answer is the read-out
unit of the question's class through a sigmoid (one binary classifier per class, as in Lindsay &
Miller 2018); the loss is the binary cross-entropy of its logit at the last step. The cue enters
only as the attention region's query: a learned template per class (`AttentionRegion.cues`), set
as the global query from the first step on, so it can only act through the gains. Since the
question already picks the unit that answers, a valid cue carries no information about the
answer, only about what to look for.

Cue types, a pre-cue in the manner of Posner (1980):
- valid: the template of the question's class;
- invalid: the template of another class, drawn uniformly;
- neutral: the mean of all templates (no class);
- shuffled (a control): the valid template with its d components permuted: the same values,
  no class;
- negated (a control): the valid template reflected through the neutral one, 2 q_bar - q_c:
  its own part pointing away from its class;
- none: no cue, the bottom-up pooled query (the paper's network).
Training draws neutral with probability `neutral`, else valid with probability `validity`,
else invalid (Posner's 80 % valid: `validity` 0.8).

What a cue names (`cue_on`): a class (above: feature-based attention, the cue says what to look
for) or a location (`"location"`: spatial attention, Posner 1980's own paradigm, the cue says
where). A location cue is a learned template per cell of the array; valid names the cell of the
array's item (the target on present trials), invalid another cell drawn uniformly, neutral the mean
of the cell templates. On absent trials the item is a distractor in a uniformly drawn cell, so
the cued cell is uniform on present and absent trials alike and carries nothing about the
answer. A location can only be named if the keys carry a position code (`--key-position`).

By default the cue replaces the bottom-up query (`beta` 1). With `beta` below 1 it is mixed into
it, q = beta cue + (1 - beta) q_bottom-up at every step (`attention.top_down_query`): a top-down
bias on the competition the stimulus sets up (biased competition, Desimone & Duncan 1995), so
that the neutral cue keeps the bottom-up attention a network was trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gattanet_sim.attention import QuerySource
from gattanet_sim.stimuli import detection_arrays

CUE_TYPES = ("valid", "neutral", "invalid", "shuffled", "negated", "none")
CUE_ON = ("class", "location")
VALID, NEUTRAL, INVALID, SHUFFLED, NEGATED, NONE = range(len(CUE_TYPES))


def another(target: torch.Tensor, num_cues: int, generator: torch.Generator) -> torch.Tensor:
    """What an invalid cue names: another template than `target` (B,), drawn uniformly -> (B,)."""
    return (target.cpu() + torch.randint(1, num_cues, (len(target),), generator=generator)) % num_cues


def draw_cues(target: torch.Tensor, num_cues: int, generator: torch.Generator,
              validity: float = 0.8, neutral: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Cue types and cued templates of a training batch: neutral with probability `neutral`, else
    valid with probability `validity`, else invalid. target (B,), what a valid cue names (the
    question's class, or the item's cell) -> (type (B,), cued template (B,))."""
    b = len(target)
    u, v = torch.rand(b, generator=generator), torch.rand(b, generator=generator)  # (B,) each
    kind = torch.where(u < neutral, NEUTRAL, torch.where(v < validity, VALID, INVALID))
    other = another(target, num_cues, generator)
    cued = torch.where(kind == INVALID, other, target.cpu())
    return kind.to(target.device), cued.to(target.device)


def cue_queries(templates: torch.Tensor, kind: torch.Tensor, cued: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The global query of every trial: templates (K, d), kind and cued (B,) -> (B, d).

    Trials of kind `none` get a row of zeros here; `query_source` leaves them bottom-up."""
    mean = templates.mean(0)  # (d,) the neutral cue
    chosen = templates[cued]  # (B, d)
    q = torch.where((kind == NEUTRAL)[:, None], mean.expand_as(chosen), chosen)  # (B, d)
    q = torch.where((kind == NEGATED)[:, None], 2 * mean - chosen, q)
    if (kind == SHUFFLED).any():
        d = templates.shape[1]
        order = torch.rand(len(kind), d, generator=generator).argsort(1).to(templates.device)  # (B, d)
        q = torch.where((kind == SHUFFLED)[:, None], chosen.gather(1, order), q)
    return torch.where((kind == NONE)[:, None], torch.zeros_like(q), q)


def cue_source(queries: torch.Tensor, beta: float = 1.0) -> QuerySource:
    """The query source of cued trials, (B, d): the cue alone (`beta` 1) or mixed into the
    bottom-up query with weight `beta`."""
    return QuerySource("template", queries) if beta == 1 else QuerySource("mixed", queries, beta)


def detection_batch(images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor,
                    pool_labels: torch.Tensor, templates: torch.Tensor, generator: torch.Generator,
                    validity: float = 0.8, neutral: float = 0.2, grid: int = 2, beta: float = 1.0,
                    cue_on: str = "class", num_classes: int | None = None) -> dict:
    """A training batch of the cued task built around a batch of images: arrays (B, 3, H, W),
    question, present, the item's cell, cue kind and cued template (B,) each, and the query
    source of every trial. `num_classes` defaults to the number of templates (class cues)."""
    k = templates.shape[0] if num_classes is None else num_classes
    arrays, question, present, cell = detection_arrays(images, labels, pool, pool_labels, k, generator, grid)
    target = cell if cue_on == "location" else question
    kind, cued = draw_cues(target, templates.shape[0], generator, validity, neutral)
    query = cue_source(cue_queries(templates, kind, cued, generator), beta)
    return {"images": arrays, "question": question, "present": present, "cell": cell, "kind": kind,
            "cued": cued, "query": query}


def detection_loss(logits: torch.Tensor, question: torch.Tensor, present: torch.Tensor,
                   weight: float | None = None) -> torch.Tensor:
    """Binary cross-entropy of the question unit's logit: logits (B, K), question, present (B,)."""
    answer = logits.gather(1, question[:, None]).squeeze(1)  # (B,)
    if weight is None:
        return F.binary_cross_entropy_with_logits(answer, present.float())
    return F.binary_cross_entropy_with_logits(answer, present.float(), reduction="sum") * weight


@torch.no_grad()
def detection_counts(model, arrays: torch.Tensor, question: torch.Tensor, present: torch.Tensor,
                     timesteps: int, kinds: tuple[int, ...] = (VALID, NEUTRAL, INVALID),
                     batch_size: int = 256, seed: int = 0, beta: float = 1.0,
                     cell: torch.Tensor | None = None) -> dict[str, list[int]]:
    """Hits, present trials, false alarms and absent trials at the last step, per cue type, of
    fixed arrays (the training loop's validation of the cued task). Invalid cues and shuffles
    are drawn from `seed`. With `cell` (B,), the item's cell, the cues name locations."""
    was_training = model.training
    model.eval()
    device = model.backbone.mean.device
    templates = model.attention.cues
    k = templates.shape[0]
    g = torch.Generator().manual_seed(seed)
    target = (question if cell is None else cell).cpu()  # (B,) what a valid cue names
    other = another(target, k, g)
    counts = {}
    for kind in kinds:
        cued = other if kind == INVALID else target
        yes = []
        for start in range(0, len(arrays), batch_size):
            part = slice(start, start + batch_size)
            kinds_ = torch.full((len(arrays[part]),), kind)
            source = query_source(templates, kinds_.to(device), cued[part].to(device), g, beta)
            logits = model(arrays[part].to(device), timesteps=timesteps, query=source)  # (b, K)
            yes.append(logits.gather(1, question[part].to(device)[:, None]).squeeze(1).cpu() > 0)
        yes, truth = torch.cat(yes), present.cpu().bool()
        counts[CUE_TYPES[kind]] = [int((yes & truth).sum()), int(truth.sum()),
                                   int((yes & ~truth).sum()), int((~truth).sum())]
    model.train(was_training)
    return counts


def query_source(templates: torch.Tensor, kind: torch.Tensor, cued: torch.Tensor,
                 generator: torch.Generator | None = None, beta: float = 1.0) -> QuerySource:
    """The attention condition of a batch whose trials all share one kind: bottom-up for
    `none`, else the cue queries (`cue_source`)."""
    if bool((kind == NONE).all()):
        return QuerySource()
    if bool((kind == NONE).any()):
        raise ValueError("a batch mixes uncued and cued trials: give them separate batches")
    return cue_source(cue_queries(templates, kind, cued, generator), beta)
