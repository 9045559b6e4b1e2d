"""The built-in reward terms; importing this package registers them."""
from .beat import BeatTerm
from .contact import ContactTerm
from .distance import DistanceTerm
from .facing import FacingTerm
from .half_body import HalfBodyTerm
from .penetration import PenetrationTerm
from .skating import SkatingTerm
from .smooth import SmoothTerm

__all__ = ["BeatTerm", "ContactTerm", "DistanceTerm", "FacingTerm", "HalfBodyTerm", "PenetrationTerm",
           "SkatingTerm",
           "SmoothTerm"]
