"""Data-vendor acquisition: value revealed vendor samples against owned pools and a target, decide what to buy."""
from thresher.mixtures.vendors.acquisition import Acquisition, VendorOffer, VendorResult, evaluate_vendors
from thresher.mixtures.vendors.decisions import GainSummary, decide, more_samples_needed, summarise
from thresher.mixtures.vendors.duplicates import embedding_duplicates, text_duplicates
from thresher.mixtures.vendors.evaluator import AcquisitionEvaluator
from thresher.mixtures.vendors.gains import GainCurve
from thresher.mixtures.vendors.pilots import PilotRuns, read_pilot_csv, run_pilots
from thresher.mixtures.vendors.prices import PriceSchedule, PriceTier
from thresher.mixtures.vendors.proxies import ClassifierProxy
from thresher.mixtures.vendors.purchase import Menu, Purchase, optimise_purchase

__all__ = [
    "Acquisition", "AcquisitionEvaluator", "ClassifierProxy", "GainCurve", "GainSummary", "Menu", "PilotRuns",
    "PriceSchedule", "PriceTier", "Purchase", "VendorOffer", "VendorResult", "decide", "embedding_duplicates",
    "evaluate_vendors", "more_samples_needed", "optimise_purchase", "read_pilot_csv", "run_pilots", "summarise",
    "text_duplicates",
]
