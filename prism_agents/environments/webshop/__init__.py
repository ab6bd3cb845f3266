"""WebShop: shopping for a described product on a real product catalog, in WebShop's text mode."""

from prism_agents.environments.webshop.env import WebShopEnv

__all__ = ["WebShopEnv"]
