"""EASE (Steck, WWW 2019), closed form. `gnnrec-jax train --model ease --dataset ml-100k --workdir runs/ease`."""
from gnnrec_jax.config import Config


def get_config() -> Config:
  return Config(model="ease", ease_l2=250.0)  # RecBole's reg_weight for EASE
