"""Data-vendor acquisition: value revealed vendor samples against owned pools and a target, decide what to buy."""
from mixtures.vendors.decisions import GainSummary, decide, more_samples_needed, summarise
from mixtures.vendors.duplicates import embedding_duplicates, text_duplicates
from mixtures.vendors.evaluator import Acquisition, AcquisitionEvaluator, VendorOffer, VendorResult, evaluate_vendors
from mixtures.vendors.gains import GainCurve
from mixtures.vendors.pilots import PilotRuns, read_pilot_csv, run_pilots
from mixtures.vendors.prices import PriceSchedule, PriceTier
from mixtures.vendors.proxies import ClassifierProxy
from mixtures.vendors.purchase import Menu, Purchase, optimise_purchase

__all__ = [
    "Acquisition", "AcquisitionEvaluator", "ClassifierProxy", "GainCurve", "GainSummary", "Menu", "PilotRuns",
    "PriceSchedule", "PriceTier", "Purchase", "VendorOffer", "VendorResult", "decide", "embedding_duplicates",
    "evaluate_vendors", "more_samples_needed", "optimise_purchase", "read_pilot_csv", "run_pilots", "summarise",
    "text_duplicates",
]
