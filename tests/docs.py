"""Hand-made documents for rule tests: one clean document and single-rule breakers."""

CLEAN = "\n".join([
    "The river carried small boats from the northern villages to the market town every morning.",
    "Farmers brought apples, honey and wool, and traders came with salt, iron tools and bright cloth.",
    "Children watched the harbour master count the cargo and write careful notes in a leather book.",
    "By noon the square was loud with music, bargaining voices and the smell of fresh bread.",
    "Most visitors stayed until evening, when lanterns were lit along the old stone bridge.",
    "Then the boats turned home again, heavy with goods that would last through the long winter.",
])
