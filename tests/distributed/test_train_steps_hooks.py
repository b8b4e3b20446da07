"""The core loop's epoch hook (validation / early stopping) and its in-place tensor batches."""

from __future__ import annotations

import torch

from augframe.distributed import DistContext, TensorData, TrainPlan, TrainProgress, train_steps

N, LENGTH = 40, 16  # global batch 8: 5 steps per epoch


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, 1, LENGTH, generator=g), torch.arange(N) % 2


def _model() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(LENGTH, 2))


class StopAfter:
    """Records where each epoch ended and asks to stop at its ``stop_at``-th call; puts the model in
    eval mode, as a validation does."""

    def __init__(self, model: torch.nn.Module, stop_at: int | None) -> None:
        self.model, self.stop_at, self.ends = model, stop_at, []

    def __call__(self, p: TrainProgress) -> bool:
        self.model.eval()
        self.ends.append(p.global_step)
        return len(self.ends) == self.stop_at

    def state_dict(self) -> dict:
        return {"ends": list(self.ends)}

    def load_state_dict(self, state: dict) -> None:
        self.ends = list(state["ends"])


def _run(dataset, hook_stop: int | None, state_path=None, seen=None):
    model = _model()
    hook = StopAfter(model, hook_stop)

    def loss_fn(m, b):
        assert m.training  # the loop put it back after the hook
        if seen is not None:
            seen.append((b.index.tolist(), b.x.clone()))
        return torch.nn.functional.cross_entropy(m(b.x), b.y), {}

    plan = TrainPlan(global_batch=8, epochs=4, max_steps=13, checkpoint_every=5, autocast=False)
    done = train_steps(DistContext(), model, torch.optim.SGD(model.parameters(), lr=0.1), dataset, loss_fn, plan,
                       on_epoch=hook, state_path=state_path)
    return done, hook


def test_tensor_batches_are_the_loaders_batches():
    x, y = _data()
    via_loader, in_place = [], []
    _run([(x[i], y[i]) for i in range(N)], None, seen=via_loader)
    _run(TensorData(x, y), None, seen=in_place)
    assert len(in_place) == len(via_loader) == 13
    for (ia, xa), (ib, xb) in zip(via_loader, in_place):
        assert ia == ib and torch.equal(xa, xb)


def test_epoch_hook_runs_at_epoch_ends_and_its_stop_survives_a_resume(tmp_path):
    data = TensorData(*_data())
    done, hook = _run(data, None)
    assert hook.ends == [5, 10, 13] and done.global_step == 13 and not done.stopped  # the last, partial epoch too
    path = tmp_path / "state.pt"
    done, hook = _run(data, 2, state_path=path)
    assert hook.ends == [5, 10] and done.global_step == 10 and done.stopped
    again, restored = _run(data, None, state_path=path)
    assert again.stopped and again.global_step == 10 and restored.ends == [5, 10]  # nothing more was trained
