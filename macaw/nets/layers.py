"""Layers as pure functions of a parameter dict: plain linear and weight-transform (WT).

A network here is a list of :class:`LayerSpec`; its parameters live in a flat
``dict[str, Tensor]`` (``"l0.weight"``, ``"l0.z"`` ...) so that adaptation is a pure function —
parameters in, adapted parameters out (the ``torch.func`` MAML style).

**Weight transform** (paper Appendix B; docs/design.md §4). A WT layer holds a latent vector ``z``
(size ``latent``) and a linear map ``(wt_weight, wt_bias)`` from it to the layer's flattened
weight matrix and bias: ``[W; b] = wt_weight @ z + wt_bias``. The paper writes ``w = W_wt z``;
the authors' code also has the bias ``wt_bias`` of that map, and so do we. In the inner loop
``z``, ``wt_weight`` and ``wt_bias`` are all adapted, so one step changes ``W`` by a matrix of
rank up to ``latent`` (a plain layer's change is an outer product summed over the batch).

Every layer, WT or plain, reduces to *effective* weights ``(W, b)``: :func:`effective_weights`.
:func:`adapted_effective_weights` returns the effective weights after one inner SGD step
directly from the gradient with respect to the effective weights — the fast meta-step's core.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

Params = dict[str, torch.Tensor]


class LayerSpec(NamedTuple):
    """One affine layer ``in_features -> out_features``; ``latent`` > 0 makes it a WT layer."""

    name: str
    in_features: int
    out_features: int
    latent: int = 0

    @property
    def is_wt(self) -> bool:
        return self.latent > 0

    @property
    def n_effective(self) -> int:
        """Size of the flattened effective ``[W; b]``."""
        return self.out_features * (self.in_features + 1)

    def param_names(self) -> tuple[str, ...]:
        if self.is_wt:
            return (f"{self.name}.wt_weight", f"{self.name}.wt_bias", f"{self.name}.z")
        return (f"{self.name}.weight", f"{self.name}.bias")

    def n_params(self) -> int:
        if self.is_wt:
            return self.n_effective * (self.latent + 1) + self.latent
        return self.n_effective


WT_INITS = ("authors", "uniform")
"""Initialisations of a WT layer: the authors' ``WLinear`` (default) or our earlier one."""


def init_layer(spec: LayerSpec, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32, wt_init: str = "authors") -> Params:
    """Initial parameters of one layer. Plain layers: ``torch.nn.Linear``'s init,
    ``U(+-1/sqrt(in))`` for weight and bias.

    WT layers, ``wt_init="authors"`` (docs/design.md §4.1, the authors' ``WLinear`` in
    ``src/nn.py``):
    ``z ~ N(0, (1/out)^2)`` and the map ``[W; b] = wt_weight z + wt_bias`` a default
    ``nn.Linear(latent, P)``, i.e. ``wt_weight`` and ``wt_bias ~ U(+-1/sqrt(latent))``. Then
    ``|z|^2 ~ latent/out^2`` is small, the effective weights start near ``wt_bias``, and an inner
    step moves ``W`` mostly through ``A A^T G`` (rank ``latent``), not along the plain gradient
    ``G`` (:func:`adapt_state`).

    ``wt_init="uniform"`` (our earlier choice, kept for the ablation): ``z ~ U(-1, 1)`` and
    ``wt_weight`` scaled so that ``W`` has a plain layer's spread, ``wt_bias = 0``. Its
    ``|z|^2 ~ latent/3`` makes the ``|z|^2 G`` term dominate every step: the inner update is
    ~99.8 % along the plain gradient at 30-50x its nominal rate.
    """
    bound = 1.0 / math.sqrt(spec.in_features)

    def uniform(*shape: int, scale: float) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * scale

    if not spec.is_wt:
        return {f"{spec.name}.weight": uniform(spec.out_features, spec.in_features, scale=bound),
                f"{spec.name}.bias": uniform(spec.out_features, scale=bound)}
    a_name, c_name, z_name = spec.param_names()
    if wt_init == "authors":
        map_bound = 1.0 / math.sqrt(spec.latent)
        return {a_name: uniform(spec.n_effective, spec.latent, scale=map_bound),
                c_name: uniform(spec.n_effective, scale=map_bound),
                z_name: torch.randn(spec.latent, generator=generator, dtype=dtype)
                / spec.out_features}
    if wt_init != "uniform":
        raise ValueError(f"unknown wt_init {wt_init!r}; expected one of {WT_INITS}")
    # z ~ U(-1, 1) has E[z_i^2] = 1/3, so W_ij = sum_k wt_ij,k z_k has variance
    # latent * s^2/3 * 1/3 for wt ~ U(-s, s); choose s so that this equals bound^2 / 3.
    s = bound * math.sqrt(3.0 / spec.latent)
    return {a_name: uniform(spec.n_effective, spec.latent, scale=s),
            c_name: torch.zeros(spec.n_effective, dtype=dtype),
            z_name: uniform(spec.latent, scale=1.0)}


def effective_weights(spec: LayerSpec, params: Params) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` of shapes ``(..., out, in)`` and ``(..., out)``; a leading task dim is kept."""
    if not spec.is_wt:
        return params[f"{spec.name}.weight"], params[f"{spec.name}.bias"]
    wt_weight, wt_bias, z = (params[n] for n in spec.param_names())
    flat = (wt_weight @ z.unsqueeze(-1)).squeeze(-1) + wt_bias
    return split_flat(spec, flat)


class _SplitFlat(torch.autograd.Function):
    """``[W; b] -> (W, b)`` whose backward concatenates the two gradients (twice
    differentiable). Two slices would each scatter their gradient into a zero-filled copy
    of ``flat`` and add the copies, on every backward pass of the meta-step."""

    @staticmethod
    def forward(ctx, flat, out_features, in_features):
        ctx.lead, ctx.sizes = flat.shape[:-1], (out_features, in_features)
        n_w = out_features * in_features
        return flat[..., :n_w].unflatten(-1, ctx.sizes), flat[..., n_w:]

    @staticmethod
    def backward(ctx, d_w, d_b):
        out_features, in_features = ctx.sizes
        like = d_w if d_w is not None else d_b
        if d_w is None:
            d_w = like.new_zeros(*ctx.lead, out_features, in_features)
        if d_b is None:
            d_b = like.new_zeros(*ctx.lead, out_features)
        return torch.cat([d_w.flatten(-2), d_b], dim=-1), None, None


def split_flat(spec: LayerSpec, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _SplitFlat.apply(flat, spec.out_features, spec.in_features)


def affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x @ w.T + b`` for shared weights ``(out, in)`` or per-task weights ``(T, out, in)``
    with ``x`` of shape ``(T, B, in)``."""
    if w.dim() == 2:
        return torch.nn.functional.linear(x, w, b)
    return torch.baddbmm(b.unsqueeze(-2), x, w.transpose(-1, -2))


class _FactorsOfGradA:
    """Rank-k factors ``(left_i, right_i)`` of ``dL/dA = sum_i left_i @ right_i`` for one WT
    matrix ``A``, collected during the outer backward pass and turned into ``dL/dA`` by a
    single matrix product (instead of one ``P x latent`` product and one addition per use
    of ``A``, which dominated the meta-step's time)."""

    def __init__(self):
        self.left: list[torch.Tensor] = []
        self.right: list[torch.Tensor] = []


class _EffectiveFromWT(torch.autograd.Function):
    """``flat = A z + c``; its backward also receives the factors that later uses of ``A``
    left in ``factors`` (autograd runs it after them: they depend on ``flat``)."""

    @staticmethod
    def forward(ctx, a, z, c, factors):
        ctx.save_for_backward(a, z)
        ctx.factors = factors
        return a @ z + c

    @staticmethod
    def backward(ctx, d_flat):
        a, z = ctx.saved_tensors
        f = ctx.factors
        # Left factors are kept as rows, (k, P): the transposed product is the faster layout.
        left = torch.cat([d_flat.unsqueeze(0), *f.left], dim=0)
        right = torch.cat([z.unsqueeze(0), *f.right], dim=0)
        f.left, f.right = [], []
        return left.T @ right, d_flat @ a, d_flat, None


class _TimesA(torch.autograd.Function):
    """``g @ A`` (``(T, P) -> (T, latent)``); ``dL/dA``'s share goes to ``factors``."""

    @staticmethod
    def forward(ctx, a, g, factors):
        ctx.save_for_backward(a, g)
        ctx.factors = factors
        return g @ a

    @staticmethod
    def backward(ctx, d_out):
        a, g = ctx.saved_tensors
        ctx.factors.left.append(g)
        ctx.factors.right.append(d_out)
        return None, d_out @ a.T, None


class _TimesATransposed(torch.autograd.Function):
    """``v @ A^T`` (``(T, latent) -> (T, P)``); ``dL/dA``'s share goes to ``factors``."""

    @staticmethod
    def forward(ctx, a, v, factors):
        ctx.save_for_backward(a, v)
        ctx.factors = factors
        return v @ a.T

    @staticmethod
    def backward(ctx, d_out):
        a, v = ctx.saved_tensors
        ctx.factors.left.append(d_out)
        ctx.factors.right.append(v)
        return None, d_out @ a, None


class LayerState(NamedTuple):
    """A layer's parameters during adaptation, in a form that never builds a per-task
    ``wt_weight``. ``flat``: effective ``[W; b]``, ``(P,)`` before adaptation and ``(T, P)``
    after. WT layers also carry ``z`` and ``history``: the per-task ``wt_weight`` is
    ``A - sum_k lr_A * g_k z_k^T`` over ``history = ((g_1, z_1), ...)`` (one rank-1 term per
    inner step); ``factors`` routes every use of ``A`` into one gradient product."""

    flat: torch.Tensor
    z: torch.Tensor | None = None
    history: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    factors: _FactorsOfGradA | None = None


def initial_state(spec: LayerSpec, params: Params) -> LayerState:
    if not spec.is_wt:
        w, b = effective_weights(spec, params)
        return LayerState(torch.cat([w.flatten(-2), b], dim=-1))
    a, c, z = (params[n] for n in spec.param_names())
    factors = _FactorsOfGradA()
    return LayerState(_EffectiveFromWT.apply(a, z, c, factors), z, (), factors)


def state_weights(spec: LayerSpec, state: LayerState) -> tuple[torch.Tensor, torch.Tensor]:
    return split_flat(spec, state.flat)


def adapt_state(spec: LayerSpec, params: Params, state: LayerState,
                lrs: dict[str, torch.Tensor], grad_flat: torch.Tensor,
                last: bool = False) -> LayerState:
    """One inner SGD step ``p' = p - lr_p * dL/dp`` on the layer's own parameters, given
    ``G = dL/d[W; b]`` per task (``grad_flat``, shape ``(T, P)``).

    Plain layer: ``dL/dW = G``, so ``W' = W - lr G``. WT layer (``w = A z + c``,
    ``A = wt_weight``, ``c = wt_bias``): ``dL/dA = G z^T``, ``dL/dz = A^T G``, ``dL/dc = G``,
    hence with ``u = A^T G``::

        w' = (A - a_A G z^T)(z - a_z u) + c - a_c G
           = w - a_z A u - (a_A |z|^2 - a_A a_z z.u + a_c) G

    which needs only matrix-vector products with ``A`` (with the rank-1 terms of earlier
    steps for ``A``); the adapted ``A'`` (``P x latent`` per task) is never built. Exact.
    With ``last`` (no inner step follows) only the effective weights are kept.
    """
    if not spec.is_wt:
        w_name, b_name = spec.param_names()
        n_w = spec.out_features * spec.in_features
        lr = torch.cat([lrs[w_name].expand(n_w), lrs[b_name].expand(spec.out_features)])
        return LayerState(state.flat - lr * grad_flat)
    a_name, c_name, z_name = spec.param_names()
    wt_weight = params[a_name]
    lr_a, lr_c, lr_z = lrs[a_name], lrs[c_name], lrs[z_name]

    def a_t_transpose_times(g: torch.Tensor) -> torch.Tensor:       # A_t^T g, (T, latent)
        out = _TimesA.apply(wt_weight, g, state.factors)
        for g_k, z_k in state.history:
            out = out - lr_a * (g_k * g).sum(-1, keepdim=True) * z_k
        return out

    def a_t_times(v: torch.Tensor) -> torch.Tensor:                 # A_t v, (T, P)
        out = _TimesATransposed.apply(wt_weight, v, state.factors)
        for g_k, z_k in state.history:
            out = out - lr_a * (z_k * v).sum(-1, keepdim=True) * g_k
        return out

    z = state.z
    u = a_t_transpose_times(grad_flat)
    # coef = a_A |z|^2 - a_A a_z z.u + a_c, as one (T, 1) column
    coef = (lr_a * (z * z).sum(-1, keepdim=True) - lr_a * lr_z * (u * z).sum(-1, keepdim=True)
            + lr_c)
    flat = torch.addcmul(state.flat - lr_z * a_t_times(u), coef, grad_flat, value=-1)
    if last:
        return LayerState(flat)
    return LayerState(flat, z - lr_z * u, (*state.history, (grad_flat, z.expand_as(u))),
                      state.factors)
