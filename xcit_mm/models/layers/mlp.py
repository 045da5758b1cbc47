"""The transformer MLP shared by XCiT and CrossFormer."""
import torch
import torch.nn as nn


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (the official XCiT and
    CrossFormer MLP; parameter names ``fc1`` / ``fc2`` as in their
    checkpoints).

    Args:
        dim (int): Input and output channels.
        hidden_dim (int): Channels of the hidden layer.
        drop (float): Dropout after each linear layer. Defaults to 0.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
