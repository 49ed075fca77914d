"""Synthetic first-notice-of-loss claims: the embedded default data set for the demo and the tests.

Each claim is drawn from a hidden story, so that the labels are learnable but never trivial:

1. A true claim type (by base rate), a damage extent (minor / moderate / major) and an injury
   level (none / minor / serious / hospitalised), each from type-specific probabilities.
2. A true loss amount, lognormal around the type's median and pushed up by damage and injury.
   ``initial_estimate`` is a noisy view of it in the claim's currency; 5% are 0.0 (not yet
   estimated).
3. A latent severity score from the damage and injury cues plus the log amount, bucketed at fixed
   thresholds, so a model needs both the narrative and the structured fields.
4. An SIU referral from a logistic of weak signals together: short policy tenure, late reporting,
   an inconsistent story, an amount high for the type, prior claims and theft-prone types.
5. A narrative in one of three voices (claimant, adjuster shorthand, legacy upper-case codes) that
   mentions the cues most of the time, with synonyms, negations, typos and irrelevant detail.
6. Label noise: 3% of claim types, 4% of severities and 0.5% of SIU flags are replaced.

All dates lie in 2021-01-01..2025-10-31 whatever today is. docs/synthetic-data.md has the rules.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

FIRST_DAY = np.datetime64("2021-01-01")
LAST_DAY = np.datetime64("2025-10-31")

SEVERITIES = ("low", "medium", "high", "severe")
# Severity score cut points, calibrated once on 400,000 rows for roughly 45/30/18/7 %.
SEVERITY_THRESHOLDS = (0.90, 1.89, 2.93)
LINES = ("auto", "property", "liability", "workers_comp")
REGIONS = ("north", "south", "east", "west", "central")
REGION_SHARES = (0.20, 0.22, 0.20, 0.22, 0.16)
STORM_REGION_SHARES = (0.12, 0.34, 0.26, 0.14, 0.14)
# Log-amount shift by region: repair costs differ a little (a weak signal).
REGION_COST = (0.0, -0.05, 0.08, 0.12, -0.10)
CURRENCIES = ("USD", "EUR", "GBP", "CAD")
CURRENCY_SHARES = (0.82, 0.07, 0.06, 0.05)
USD_TO = (1.0, 0.92, 0.79, 1.37)
CHANNELS = ("phone", "web", "agent", "mobile_app", "email")
VOICES = ("claimant", "adjuster", "code")
VOICE_SHARES = (0.45, 0.35, 0.20)
# Who files in which voice: claimants use the web and the app, adjusters and agents the phone.
CHANNEL_SHARES_BY_VOICE = {
    "claimant": (0.22, 0.30, 0.05, 0.33, 0.10),
    "adjuster": (0.60, 0.05, 0.30, 0.02, 0.03),
    "code": (0.55, 0.05, 0.35, 0.00, 0.05),
}
POLICY_PREFIX = {"auto": "AU", "property": "HO", "liability": "GL", "workers_comp": "WC"}
AGE_RANGE = {
    "auto": (16, 92),
    "property": (18, 95),
    "liability": (16, 95),
    "workers_comp": (18, 70),
}

UNINFORMATIVE_RATE = 0.03
ZERO_ESTIMATE_RATE = 0.05
SHORT_TENURE_RATE = 0.08
SHORT_TENURE_DAYS = 60
LATE_REPORT_DAYS = 30
INCONSISTENT_RATE = 0.06
TYPO_RATE = 0.10
TYPO_WORD_RATE = 0.05
CONFUSER_RATE = 0.15
SHARED_EVENT_RATE = 0.15
TYPE_NOISE, SEVERITY_NOISE, SIU_NOISE = 0.03, 0.04, 0.005

# The SIU logistic: log-odds = intercept + sum of weight * signal.
SIU_INTERCEPT = -4.4
SIU_WEIGHTS = {
    "short_tenure": 1.6,
    "late_report": 1.3,
    "inconsistent": 1.9,
    "high_amount": 1.1,
    "prior_claims": 0.3,  # per prior claim, counted up to 6
    "prone_type": 0.6,  # vehicle theft, fire, burglary
}
HIGH_AMOUNT_LOG_EXCESS = 0.75  # amount more than e^0.75 = 2.1 times what type and cues predict


@dataclass(frozen=True)
class ClaimTypeProfile:
    """How one claim type behaves in the hidden story."""

    line: str
    share: float
    median_usd: float  # true loss with no damage or injury cue
    damage: str | None  # damage vocabulary; None where only injuries count
    story: str  # vocabulary for inconsistencies and the injured party
    damage_p: tuple[float, float, float]  # minor, moderate, major
    injury_p: tuple[float, float, float, float]  # none, minor, serious, hospitalised
    severity_shift: float
    late_rate: float  # chance of a report more than 30 days after the loss
    siu_prone: bool = False


# fmt: off
CLAIM_TYPES: dict[str, ClaimTypeProfile] = {
    "collision": ClaimTypeProfile("auto", 0.22, 3500, "vehicle", "auto",
                                  (0.45, 0.40, 0.15), (0.68, 0.22, 0.07, 0.03), 0.0, 0.04),
    "vehicle_theft": ClaimTypeProfile("auto", 0.05, 9000, "theft", "theft",
                                      (0.25, 0.30, 0.45), (1, 0, 0, 0), 0.0, 0.06, True),
    "glass_damage": ClaimTypeProfile("auto", 0.08, 450, "glass", "auto",
                                     (0.55, 0.40, 0.05), (1, 0, 0, 0), -0.3, 0.05),
    "water_damage": ClaimTypeProfile("property", 0.18, 5000, "water", "property",
                                     (0.45, 0.40, 0.15), (0.99, 0.01, 0, 0), 0.0, 0.08),
    "fire": ClaimTypeProfile("property", 0.03, 20000, "fire", "contents",
                             (0.30, 0.45, 0.25), (0.85, 0.09, 0.04, 0.02), 0.3, 0.03, True),
    "storm": ClaimTypeProfile("property", 0.09, 7000, "storm", "property",
                              (0.45, 0.40, 0.15), (0.97, 0.02, 0.01, 0), 0.0, 0.07),
    "burglary": ClaimTypeProfile("property", 0.06, 3500, "burglary", "contents",
                                 (0.45, 0.40, 0.15), (0.98, 0.02, 0, 0), 0.0, 0.04, True),
    "slip_and_fall": ClaimTypeProfile("liability", 0.08, 9000, None, "injury",
                                      (1, 0, 0), (0, 0.50, 0.35, 0.15), -0.4, 0.12),
    "dog_bite": ClaimTypeProfile("liability", 0.03, 5000, None, "injury",
                                 (1, 0, 0), (0, 0.60, 0.32, 0.08), -0.4, 0.10),
    "workplace_injury": ClaimTypeProfile("workers_comp", 0.12, 7000, None, "work",
                                         (1, 0, 0), (0, 0.45, 0.37, 0.18), -0.4, 0.08),
    "repetitive_strain": ClaimTypeProfile("workers_comp", 0.06, 8000, None, "work",
                                          (1, 0, 0), (0, 0.65, 0.30, 0.05), -0.4, 0.30),
}
TYPE_NAMES = tuple(CLAIM_TYPES)

# Vocabulary. {slot} placeholders are filled from SLOTS (recursively), or from the claim itself:
# {month_day}, {weekday}, {dol} (03/14/24), {dol_code} (031424), {party} (the injured person
# in adjuster notes) and {body_part} / {bone}, fixed per narrative; {num} is a reference number.

SLOTS: dict[str, tuple[str, ...]] = {
    "street": ("Elm St", "Main Street", "Route 9", "the I-95 on-ramp", "Oak Avenue", "Maple Dr",
               "the Walmart parking lot", "5th and Pine", "Highway 40", "Cedar Lane",
               "Lakeshore Blvd", "the roundabout near my house", "Church Road", "Mill Road",
               "the school pickup line"),
    "road": ("Rte 9", "I-95", "Main St", "Hwy 40", "Elm St", "Oak Ave", "cty rd 12", "Mill Rd"),
    "dest": ("home", "to work", "to pick up my daughter", "back from the gym", "to the store",
             "home from my night shift", "to church"),
    "my_car": ("my car", "my vehicle", "my truck", "my SUV", "my Honda", "my Corolla", "the car",
               "my F-150", "my wife's car", "our minivan", "my Civic", "the van"),
    "other_car": ("another car", "a pickup truck", "a delivery van", "a guy in a black SUV",
                  "a car", "a bus", "a teenage driver", "an Uber", "a semi",
                  "a lady in a silver sedan"),
    "parking": ("my driveway", "outside my house", "the parking garage", "the train station lot",
                "the street outside my flat", "the mall parking lot", "my work car park"),
    "parking_short": ("driveway", "street", "pkg garage", "station lot", "work lot", "mall lot"),
    "time": ("around 7:30 in the morning", "at about 6pm", "late at night", "around noon",
             "just after midnight", "during rush hour", "early in the morning",
             "around 3 in the afternoon"),
    "weather": ("It was pouring rain", "It was foggy", "The roads were icy",
                "It was a clear sunny day", "It was getting dark", "There was snow on the ground",
                "It was really windy", "It was boiling hot that day"),
    "house": ("my house", "our home", "the house", "our apartment", "my condo",
              "the rental property", "my flat"),
    "room": ("kitchen", "basement", "bathroom", "living room", "master bedroom", "garage",
             "laundry room", "hallway", "kids' bedroom", "attic", "dining room"),
    "item": ("my laptop", "the TV", "my jewellery", "my grandmother's ring", "two bikes",
             "a PlayStation", "some cash", "power tools", "an iPad", "two watches",
             "camera gear", "my husband's golf clubs"),
    "item_short": ("laptop", "TV", "jewelry", "bikes", "cash", "tools", "tablet", "watches"),
    "premises": ("the supermarket", "your insured's restaurant", "the gym", "the hotel",
                 "the apartment building", "the coffee shop", "the pharmacy",
                 "the garden centre"),
    "workplace": ("the warehouse", "the loading dock", "the building site", "the factory",
                  "the restaurant kitchen", "the stockroom", "the plant", "work",
                  "the distribution centre"),
    "workplace_short": ("whse", "dock", "job site", "plant", "stockroom", "store"),
    "body_part": ("neck", "back", "lower back", "shoulder", "knee", "wrist", "ankle", "hip",
                  "arm", "hand"),
    "bone": ("wrist", "arm", "ankle", "leg", "collarbone", "hip", "ribs", "finger", "elbow"),
    "rs_part": ("wrists", "right wrist", "elbow", "shoulder", "lower back", "hands", "neck"),
    "dog": ("our German shepherd", "my labrador", "our dog", "my pit bull", "our rescue dog",
            "my husband's terrier", "our husky"),
    "tp": ("mail carrier", "nbr child", "delivery driver", "jogger", "guest", "contractor"),
    "victim": ("the mail carrier", "a delivery driver", "the neighbour's boy", "a jogger",
               "a lady walking past", "one of my son's friends", "the meter reader"),
    "clmt": ("Clmt", "Insd", "Claimant", "Ins'd", "Caller", "Named insd"),
    "states": ("states", "reports", "advises", "stated", "adv", "reported"),
    "city": ("Ohio", "Denver", "the coast", "Phoenix", "Toronto", "Leeds", "her place upstate"),
    "n": ("3", "5", "6", "7", "9", "12"),
}

# The injured person as adjusters write it, by story.
PARTY: dict[str, tuple[str, ...]] = {
    "auto": ("clmt", "driver", "insd", "IV driver"), "theft": ("clmt",),
    "property": ("insd", "occupant"), "contents": ("insd", "occupant"),
    "injury": ("TP", "clmt", "TP"), "work": ("EE", "IW", "EE"),
}

# What happened, by claim type and voice; "third" is the insured telling of someone else's injury.
EVENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "collision": {
        "claimant": (
            "I was driving {dest} on {street} when {other_car} ran the red light and hit my "
            "passenger side.",
            "{other_car} rear-ended me while I was stopped at a light on {street}.",
            "I was backing out of a parking space and hit a pole I didn't see.",
            "Someone pulled out of a side street on {street} and I couldn't stop in time, "
            "I hit them.",
            "I slid on ice and went into a ditch on {street}.",
            "A deer ran out in front of {my_car} on {street} and I hit it.",
            "{other_car} merged into my lane on {street} and sideswiped me.",
            "My son was driving {my_car} and got into an accident at {street}.",
            "I got hit from behind in stop and go traffic on {street}.",
            "Coming round the bend on {street} I lost control and hit a fence.",
            "Had a crash with {other_car} at the junction on {street}.",
        ),
        "adjuster": (
            "{clmt} {states} IV rear-ended at light by OV.",
            "{clmt} {states} OV ran red lt and struck IV pass side.",
            "IV backed into pole in pkg lot, single veh.",
            "IV struck deer on {road}.",
            "OV failed to yield, IV T-boned at intersection of {road}.",
            "IV lost control on ice, struck guardrail on {road}.",
            "Multi-veh accident on {road}, IV middle car.",
            "{clmt} {states} OV sideswiped IV on {road}, OV driver cited.",
        ),
        "code": ("REAR END COLLISION", "INTERSECTION COLLISION", "SINGLE VEH ACC", "SIDESWIPE",
                 "ANIMAL STRIKE", "MVA", "PARKING LOT COLLISION", "AUTO ACCIDENT"),
    },
    "vehicle_theft": {
        "claimant": (
            "I came out this morning and {my_car} was gone from {parking}.",
            "Someone stole {my_car} from {parking} overnight.",
            "My car was stolen while I was in the gym, I had the keys with me.",
            "I think my vehicle has been stolen, it's not where I parked it on {street} and the "
            "tow companies don't have it.",
            "Thieves took {my_car} from {parking}, the neighbour's camera shows two guys at 3am.",
            "{my_car} was taken from {parking}. Police have given me a crime number.",
        ),
        "adjuster": (
            "{clmt} {states} IV stolen from {parking_short} overnight.",
            "Veh theft rptd to PD, case #{num}.",
            "IV not located, keys in clmt possession.",
            "IV taken from {parking_short} while clmt at work, PD rpt filed.",
        ),
        "code": ("VEH THEFT", "AUTO THEFT", "STOLEN VEH", "THEFT OF VEHICLE"),
    },
    "glass_damage": {
        "claimant": (
            "A rock flew up from a truck on {street} and cracked my windshield.",
            "There's a chip in the windscreen that has now spread into a long crack.",
            "Someone smashed the driver's side window of {my_car} overnight, nothing was taken.",
            "The back window of {my_car} shattered, no idea why, maybe the cold.",
            "A stone hit the windshield on the highway and now there's a crack.",
            "Kids playing ball broke the rear windscreen of {my_car}.",
        ),
        "adjuster": (
            "W/s cracked by road debris on {road}.",
            "Chip in w/s spread, replacement req.",
            "Driver side window smashed, nothing taken.",
            "Rear glass shattered, cause unk.",
            "{clmt} {states} stone strike to windshield.",
        ),
        "code": ("GLASS CLAIM", "WINDSHIELD CRACK", "W/S REPLACE", "SIDE GLASS BROKEN"),
    },
    "water_damage": {
        "claimant": (
            "A pipe burst under the {room} sink and flooded the floor.",
            "Water came through the {room} ceiling from the upstairs bathroom.",
            "Our water heater failed and leaked all over the {room}.",
            "The washing machine hose split while we were out and water went everywhere.",
            "We came home to find the {room} flooded from a burst pipe.",
            "There's been a leak behind the shower wall and now the floor is soft.",
            "The upstairs neighbour's toilet overflowed and it came through our ceiling.",
            "A frozen pipe in the {room} burst during the cold snap.",
            "The dishwasher leaked overnight and the water got under the floorboards.",
        ),
        "adjuster": (
            "Burst pipe under {room} sink.",
            "Water intrusion from upstairs unit, ceiling stained.",
            "WH failure, water in {room}.",
            "Supply line to washer failed.",
            "Leak behind shower wall, seepage.",
            "Frozen pipe burst in {room}.",
            "{clmt} {states} water leak in {room}, source plumbing.",
        ),
        "code": ("WATER DMG", "BURST PIPE", "WATER LEAK", "ESCAPE OF WATER", "APPLIANCE LEAK"),
    },
    "fire": {
        "claimant": (
            "A pan caught fire on the stove and the flames spread to the cabinets.",
            "There was an electrical fire in the {room}, the fire department came.",
            "A candle tipped over in the {room} and set the curtains alight.",
            "Our dryer caught fire in the {room}.",
            "The neighbour's garage fire spread to our fence and the side of the house.",
            "A fire started in the wiring in the {room} and there was smoke everywhere.",
        ),
        "adjuster": (
            "Kitchen fire, stovetop grease.",
            "Electrical fire in {room}, FD responded.",
            "Candle fire in {room}.",
            "Dryer fire in {room}.",
            "Fire spread from nbr garage to dwelling.",
        ),
        "code": ("FIRE", "KITCHEN FIRE", "ELEC FIRE", "FIRE/SMOKE DMG"),
    },
    "storm": {
        "claimant": (
            "High winds last night tore shingles off the roof.",
            "A tree came down on the house during the storm.",
            "Hail dented the siding and broke two skylights.",
            "The storm blew in the {room} window.",
            "Lightning struck the chimney during the thunderstorm.",
            "Our fence and shed were flattened by the wind.",
            "The hurricane lifted part of the roof off.",
        ),
        "adjuster": (
            "Wind dmg to roof, shingles missing.",
            "Tree fell on dwelling during storm.",
            "Hail dmg to siding/skylights.",
            "Wind-driven rain through {room} window.",
            "Lightning strike to chimney.",
            "{clmt} {states} roof dmg after storm.",
        ),
        "code": ("WIND DMG", "HAIL DMG", "STORM DMG", "TREE ON DWELLING", "ROOF DMG - WIND"),
    },
    "burglary": {
        "claimant": (
            "Someone broke into {house} while we were at work and took {item} and {item}.",
            "We came back from holiday to find the back door forced and {item} gone.",
            "Burglars got in through the {room} window and stole {item}.",
            "There was a forced entry through the garage, they took {item}.",
            "I got home and the front door lock had been broken, {item} and {item} are missing.",
            "Our house was burgled last night, they took {item}.",
        ),
        "adjuster": (
            "Forced entry via rear door, contents stolen incl {item_short}.",
            "Burglary while insd on vacation; {item_short} taken.",
            "Break-in through {room} window, police rpt #{num}.",
            "{clmt} {states} home broken into, {item_short} and {item_short} stolen.",
        ),
        "code": ("BURGLARY", "FORCED ENTRY", "THEFT FROM DWELLING", "B&E"),
    },
    "slip_and_fall": {
        "claimant": (
            "I slipped on a wet floor in {premises} and there was no sign up.",
            "I tripped on a broken step outside {premises} and fell.",
            "I fell on ice in the parking lot of {premises}, it hadn't been salted.",
            "I tripped over a loose rug in the lobby of {premises}.",
            "I slipped on spilled milk in aisle {n} of {premises}.",
        ),
        "third": (
            "A delivery driver fell down our front steps.",
            "A visitor tripped on an uneven paving stone in our front yard.",
            "A customer slipped on a wet floor in my shop.",
            "My neighbour slipped on our icy driveway.",
        ),
        "adjuster": (
            "TP slipped on wet floor at insd premises, no wet floor sign.",
            "TP tripped on broken step at insd location.",
            "TP fell on ice in insd pkg lot.",
            "Customer slip/fall aisle {n}, spilled liquid.",
            "{clmt} {states} TP fell on stairs at insd rental property.",
        ),
        "code": ("SLIP AND FALL", "TRIP AND FALL", "PREMISES LIAB - FALL", "S/F"),
    },
    "dog_bite": {
        "claimant": (
            "A dog ran out of a yard on {street} and bit me on the leg.",
            "While I was delivering a parcel the homeowner's dog attacked me.",
            "I was bitten by a dog at {premises}, the owner didn't have it on a lead.",
        ),
        "third": (
            "{dog} bit {victim} on the hand.",
            "{dog} got out of the yard and bit {victim}.",
            "A woman says {dog} bit her at the park.",
            "{dog} nipped {victim} at a birthday party at our house.",
        ),
        "adjuster": (
            "Insd's dog bit TP ({tp}).",
            "Dog bite to TP hand, dog up to date on shots.",
            "Insd dog escaped yard, bit {tp}.",
            "TP alleges bite from insd's dog at park.",
        ),
        "code": ("DOG BITE", "ANIMAL BITE", "DOG ATTACK"),
    },
    "workplace_injury": {
        "claimant": (
            "I hurt my {body_part} lifting a heavy box at {workplace}.",
            "I slipped on a wet floor at {workplace} during my shift.",
            "A pallet fell on my foot at {workplace}.",
            "I cut my hand on the slicer at work.",
            "I fell off a ladder while stocking shelves at work.",
            "I got my hand caught in a machine at {workplace}.",
            "A forklift clipped me at {workplace}.",
        ),
        "adjuster": (
            "EE injured {body_part} lifting at {workplace_short}.",
            "EE slipped on wet floor during shift.",
            "EE struck by falling pallet at {workplace_short}.",
            "EE laceration to hand, slicer.",
            "EE fell from ladder while stocking.",
            "EE hand caught in machinery.",
        ),
        "code": ("WC - LIFTING INJ", "WC - STRUCK BY", "WC - LACERATION", "WC - FALL FROM LADDER",
                 "WC - SLIP ON WET FLOOR", "WC - CAUGHT IN MACHINE"),
    },
    "repetitive_strain": {
        "claimant": (
            "I've had pain in my {rs_part} for months from typing all day at work.",
            "My doctor says it's carpal tunnel from the assembly line work.",
            "My shoulder has got worse over the last year from all the overhead work.",
            "Constant lifting at {workplace} has worn out my back, it's been building for months.",
            "I have tendonitis in both wrists from scanning items at the checkout every shift.",
            "I've got numbness in my fingers that came on gradually, I use vibrating tools daily.",
        ),
        "adjuster": (
            "EE reports gradual onset {rs_part} pain, repetitive keyboard use.",
            "CTS dx, assembly line duties.",
            "Cumulative trauma claim, shoulder, overhead work.",
            "EE reports tendonitis, repetitive scanning.",
            "Gradual onset back pain from repetitive lifting at {workplace_short}.",
        ),
        "code": ("WC - CUMULATIVE TRAUMA", "WC - REPETITIVE MOTION", "CTS", "WC - GRADUAL ONSET"),
    },
}

# Events told the same way for two claim types: the text alone cannot tell them apart.
SHARED_EVENTS: tuple[dict[str, tuple[str, ...]], ...] = (
    {"types": ("slip_and_fall", "workplace_injury"),
     "claimant": ("I slipped on a wet floor and landed hard on my {body_part}.",
                  "I tripped over a cable someone left out and fell."),
     "adjuster": ("Clmt slipped on wet floor and fell.", "Trip and fall over cable."),
     "code": ("SLIP/FALL", "TRIP - FALL")},
    {"types": ("water_damage", "storm"),
     "claimant": ("Water came through the {room} ceiling after the heavy rain.",
                  "Rain got in somewhere and now the {room} is wet."),
     "adjuster": ("Water intrusion thru ceiling after heavy rain.", "Water in {room}, source unk."),
     "code": ("WATER INTRUSION", "RAIN DMG")},
    {"types": ("workplace_injury", "repetitive_strain"),
     "claimant": ("My {body_part} has been hurting since all the lifting at work.",
                  "I hurt my back at work."),
     "adjuster": ("EE reports {body_part} pain from lifting at work.", "EE back strain at work."),
     "code": ("WC - STRAIN", "WC - BACK PAIN")},
    {"types": ("glass_damage", "vehicle_theft"),
     "claimant": ("Someone smashed my car window and took the stereo.",
                  "My car was broken into last night, the window is smashed."),
     "adjuster": ("Veh broken into, window smashed, stereo taken.", "Theft from veh, glass dmg."),
     "code": ("VEH BREAK-IN", "THEFT FROM VEH")},
    {"types": ("dog_bite", "slip_and_fall"),
     "claimant": ("A dog knocked me over and I fell.",
                  "I fell when a dog ran at me on the steps of {premises}."),
     "adjuster": ("TP knocked down by dog, fell.", "Dog ran at TP, TP fell on steps."),
     "code": ("DOG - FALL", "KNOCKED DOWN BY DOG")},
    {"types": ("fire", "storm"),
     "claimant": ("Lightning hit the house and started a fire in the attic.",),
     "adjuster": ("Lightning strike, fire in attic.",),
     "code": ("LIGHTNING/FIRE",)},
)

# Damage extent: DAMAGE[vocabulary][voice][level], level 0 minor, 1 moderate, 2 major.
DAMAGE: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "vehicle": {
        "claimant": (
            ("There's just a scratch on the bumper.", "Only a small dent in the door.",
             "Minor damage really, a scuff and a cracked tail light.",
             "The damage isn't bad, just some paint transfer. Definitely not a total loss."),
            ("The passenger door is caved in.",
             "The front bumper is hanging off and a headlight is smashed.",
             "The whole rear end is pushed in but it still drives.",
             "Both doors on the driver's side are dented in pretty badly."),
            ("The car is totaled.", "The frame is bent and the airbags went off.",
             "The tow guy said it's probably a total loss.",
             "The engine is pushed in and it's not driveable."),
        ),
        "adjuster": (
            ("Minor PD to rear bumper.", "Light scrapes, drivable.", "PD minor - scratch/dent."),
            ("Mod PD to pass side doors.", "Front end dmg, airbags not deployed.",
             "Rear end pushed in, drivable."),
            ("Poss TL, frame dmg.", "Airbags deployed, veh towed, likely TL.",
             "Heavy front end dmg, non-drivable."),
        ),
        "code": (("MINOR PD", "SCRATCH/DENT", "PD MINOR"),
                 ("MOD PD", "DRIVEABLE", "AIRBAGS NOT DEPLOYED"),
                 ("TOTAL LOSS", "TL PROBABLE", "FRAME DMG - NON DRIVEABLE")),
    },
    "theft": {
        "claimant": (
            ("The police found it two days later with just a broken ignition.",
             "It was recovered the next day with minor damage."),
            ("It was found abandoned with the stereo ripped out and the seats slashed.",
             "Police recovered it but it's been stripped of the wheels and catalytic converter."),
            ("It still hasn't been found.", "Police found it burned out in a field.",
             "No sign of it after two weeks."),
        ),
        "adjuster": (
            ("Veh recovered w/ minor dmg.", "Recovered next day, ignition dmg only."),
            ("Veh recovered stripped.", "Recovered, interior vandalized."),
            ("Veh not recovered.", "Veh recovered burned, TL."),
        ),
        "code": (("RECOVERED - MINOR DMG",), ("RECOVERED - STRIPPED",),
                 ("NOT RECOVERED", "RECOVERED BURNED")),
    },
    "glass": {
        "claimant": (
            ("It's only a small chip.", "Just a little crack in the corner."),
            ("The crack runs right across my line of sight.",
             "The whole windshield needs replacing."),
            ("Several windows and the windshield were smashed.",
             "All the glass on one side is broken and there's glass all over the seats."),
        ),
        "adjuster": (("Small chip, repairable.",), ("Crack across driver view, replace w/s.",),
                     ("Multiple windows broken.", "W/s and 2 side windows broken.")),
        "code": (("CHIP REPAIR",), ("W/S REPLACE",), ("MULTI GLASS",)),
    },
    "water": {
        "claimant": (
            ("There's a small stain on the ceiling and the carpet is a bit damp.",
             "We caught it quickly, just a wet floor.",
             "Minor, a few tiles need replacing. No structural damage."),
            ("The ceiling came down in the {room} and the carpet and drywall are ruined.",
             "The flooring in two rooms will need to come up.",
             "There's about an inch of water across the {room}."),
            ("Part of the ceiling collapsed and there's structural damage to the joists.",
             "The whole ground floor was flooded and we've had to move out.",
             "The house isn't livable right now, everything downstairs is soaked."),
        ),
        "adjuster": (
            ("Minor staining, no structural dmg.", "Limited to flooring in one room."),
            ("Ceiling collapse in {room}, drywall/flooring dmg.",
             "Water in 2+ rooms, mitigation req."),
            ("Structural dmg to joists, dwelling uninhabitable.",
             "Whole first floor flooded, ALE req."),
        ),
        "code": (("MINOR", "NO STRUCT DMG"), ("CEILING/DRYWALL DMG", "MITIGATION REQ"),
                 ("STRUCTURAL DMG", "UNINHABITABLE - ALE")),
    },
    "fire": {
        "claimant": (
            ("Luckily we put it out ourselves, just some smoke marks on the wall.",
             "Only the microwave and one cabinet got burnt."),
            ("The kitchen is badly burnt and there's smoke damage through the house.",
             "Most of the {room} is burnt and everything smells of smoke."),
            ("The house is a total loss.",
             "The roof collapsed and the fire department said the structure is unsafe.",
             "We lost everything, the house is gutted."),
        ),
        "adjuster": (
            ("Minor smoke dmg, contained to stove.", "Small fire, extinguished by insd."),
            ("Fire dmg to kitchen, smoke throughout.", "Fire dmg to {room}, smoke odor."),
            ("Dwelling TL.", "Structure unsafe per FD, ALE req."),
        ),
        "code": (("SMOKE ONLY", "CONTAINED"), ("KITCHEN DMG", "SMOKE THROUGHOUT"),
                 ("TOTAL LOSS", "STRUCTURE UNSAFE")),
    },
    "storm": {
        "claimant": (
            ("A few shingles came off, nothing major.",
             "Just some damage to the gutter and fence."),
            ("Part of the roof is missing and rain has come in.",
             "The shed is destroyed and there's damage to the siding."),
            ("The tree went through the roof and there's structural damage.",
             "The roof is gone over half the house, it's not safe to stay."),
        ),
        "adjuster": (
            ("Few shingles missing.", "Minor gutter/fence dmg."),
            ("Roof partially missing, interior water dmg.", "Shed destroyed, siding dmg."),
            ("Tree through roof, structural dmg.", "Roof loss, dwelling uninhabitable."),
        ),
        "code": (("MINOR ROOF",), ("ROOF/INTERIOR DMG",), ("STRUCTURAL DMG",)),
    },
    "burglary": {
        "claimant": (
            ("They only took a couple of small things.",
             "Not much was taken, maybe a few hundred dollars' worth."),
            ("They took a lot of electronics and some jewellery.",
             "The place was turned over and several valuables are gone."),
            ("They cleared the house out, jewellery, electronics, everything.",
             "They took all my late mother's jewellery and the safe."),
        ),
        "adjuster": (("Low value items taken.",), ("Electronics and jewelry taken, list pending.",),
                     ("Extensive contents loss, safe taken.",)),
        "code": (("LOW VALUE",), ("ELECTRONICS/JEWELRY",), ("EXTENSIVE CONTENTS",)),
    },
}

# Injury: INJURY[writer][level], level 0 none (negated cue words), 1 minor, 2 serious,
# 3 hospitalised. "first" is the claimant about themself, "third" about someone else.
INJURY: dict[str, tuple[tuple[str, ...], ...]] = {
    "first": (
        ("Nobody was hurt.", "No injuries, thank god.", "I'm fine, no injuries.",
         "Nobody was hurt but I'm pretty shaken up.", "I wasn't hospitalised or anything.",
         "No one needed an ambulance.", "I don't think anyone was injured."),
        ("My {body_part} is a bit sore.", "I've pulled something in my {body_part}.",
         "Some bruising on my {body_part}, nothing broken.",
         "I went to urgent care and they said it's a sprain.",
         "Just a minor cut, I didn't go to the hospital."),
        ("I broke my {bone}.", "The X-ray showed a fracture in my {bone}.",
         "I needed stitches and they think I have a concussion.",
         "I've been off work since with a torn ligament in my knee."),
        ("I was admitted to hospital for three days.",
         "I was hospitalized and needed surgery on my {bone}.",
         "The ambulance took me to the ER and they kept me in, I'm having surgery.",
         "I'm still in the hospital."),
    ),
    "third": (
        ("Nobody was hurt.", "They weren't injured."),
        ("They have some bruising.", "It was only a small puncture wound.",
         "They said their {body_part} hurts but they didn't go to hospital."),
        ("They broke their {bone}.", "They needed stitches.",
         "Apparently it's a fracture of the {bone}."),
        ("They were kept in hospital overnight.",
         "They were admitted to hospital and need surgery."),
    ),
    "adjuster": (
        ("No inj reported.", "No BI.", "Denies inj.", "{party} denies any pain.",
         "Not hospitalized.", "PD only."),
        ("{party} c/o {body_part} pain.", "Soft tissue inj to {body_part}.",
         "Minor inj, treated at urgent care.", "{party} reports bruising, no ER visit."),
        ("{party} sustained fx {bone}.", "Lac req sutures, poss concussion.",
         "ER visit, {bone} fx confirmed."),
        ("{party} admitted to hosp.", "{party} hospitalized, surgery scheduled.",
         "Transported by EMS, admitted ICU."),
    ),
    "code": (
        ("NO INJ", "PD ONLY", "NO BI", "DENIES INJ"),
        ("MINOR INJ", "SOFT TISSUE", "BI - MINOR"),
        ("FX", "BI - FRACTURE", "LAC - SUTURES"),
        ("HOSPITALIZED", "BI - ADMITTED", "SURGERY REQ"),
    ),
}
# Minor injuries typical of a claim type, said instead of INJURY half the time.
MINOR_INJURY_BY_TYPE: dict[str, dict[str, tuple[str, ...]]] = {
    "collision": {
        "first": ("I have whiplash and a stiff neck.",
                  "My neck has been killing me since, whiplash."),
        "adjuster": ("{party} c/o neck pain, whiplash.", "Whiplash claimed."),
        "code": ("WHIPLASH", "BI - WHIPLASH"),
    },
    "dog_bite": {
        "first": ("It's only a nip, the skin is barely broken.", "Just a few tooth marks."),
        "third": ("It was only a small puncture wound.", "Just a nip, they had a tetanus shot."),
        "adjuster": ("Minor puncture wound, cleaned at urgent care.", "Superficial bite."),
        "code": ("PUNCTURE - MINOR", "SUPERFICIAL BITE"),
    },
    "repetitive_strain": {
        "first": ("It's sore but I can still do most of my job.", "The physio says it's mild."),
        "adjuster": ("Mild sx, conservative tx.", "EE on light duty, PT ordered."),
        "code": ("MILD SX", "LIGHT DUTY"),
    },
}
# An injury said without its extent.
VAGUE_INJURY: dict[str, tuple[str, ...]] = {
    "first": ("I got hurt.", "I'm in a lot of pain.", "I've been to the doctor about it."),
    "third": ("They were hurt.", "They say they are in pain."),
    "adjuster": ("{party} claims inj, details TBD.", "Inj claimed, med recs requested."),
    "code": ("BI CLAIMED", "INJ - DETAILS TBD"),
}

# An inconsistent story, by story: claimant pairs (said early, contradicted later), and single
# notes in the adjuster and code voices.
INCONSISTENCIES: dict[str, dict[str, tuple]] = {
    "auto": {
        "claimant": (
            ("I was parked outside the store when it happened.",
             "I was driving maybe 30 when I hit the brakes."),
            ("This happened around 10 at night.", "I remember the sun was right in my eyes."),
            ("", "I don't have the other driver's details, they drove off before I could get "
                 "them."),
            ("My husband wasn't with me.", "My husband says the other car came out of nowhere."),
        ),
        "adjuster": ("Clmt initially stated IV was parked, later stated clmt was driving.",
                     "TOL given as 2200, later as 0800.",
                     "Photos show dmg inconsistent w/ loss desc.",
                     "Clmt unable to provide OV info."),
        "code": ("STORY INCONSISTENT", "TOL MISMATCH", "DMG INCONSISTENT"),
    },
    "theft": {
        "claimant": (
            ("I always lock it and had both keys with me.",
             "I might have left the spare key in the glovebox."),
            ("It was taken around 2am.", "I saw it in the driveway when I left for work at 7."),
            ("", "I don't have receipts for the aftermarket stereo or the rims."),
        ),
        "adjuster": ("Clmt states both keys in possession, later unsure re spare key.",
                     "Timeline of theft inconsistent.", "Aftermarket equip, receipts unavailable."),
        "code": ("KEYS QUESTION", "TIMELINE INCONSISTENT", "NO RECEIPTS"),
    },
    "property": {
        "claimant": (
            ("It happened suddenly last night.",
             "To be honest that stain has been there a while."),
            ("We were home when it started.", "We only found it when we got back from holiday."),
            ("", "The contractor says the damage looks old, but it's new."),
        ),
        "adjuster": ("Dmg appears long-term, clmt states sudden.",
                     "Clmt version of events changed on 2nd call.", "Occupancy at TOL unclear."),
        "code": ("PRIOR DMG SUSPECTED", "STORY CHANGED"),
    },
    "contents": {
        "claimant": (
            ("", "Receipts are unavailable, most things were bought with cash."),
            ("We were away for the weekend.", "I was in the kitchen when I heard it."),
            ("", "I had just bought a new TV and laptop the week before, I don't have receipts."),
            ("The doors were all locked.", "I think the back door might have been open."),
        ),
        "adjuster": ("Receipts unavailable.",
                     "High value items purchased recently in cash, no receipts.",
                     "Clmt stmt re occupancy at TOL inconsistent."),
        "code": ("NO RECEIPTS", "STMT INCONSISTENT"),
    },
    "injury": {
        "claimant": (
            ("Nobody saw it happen.", "There were two witnesses but I don't have their names."),
            ("It happened on Saturday morning.",
             "It was a Friday evening, I remember because I'd just finished work."),
            ("The floor was wet.", "I didn't actually notice anything on the floor."),
        ),
        "adjuster": ("Witness info inconsistent.", "Date of incident differs between stmts.",
                     "Clmt story changed re cause."),
        "code": ("WITNESS CONFLICT", "DATE MISMATCH"),
    },
    "work": {
        "claimant": (
            ("It happened at the start of my shift.", "I was already home when I felt it go."),
            ("", "I first noticed it over the weekend playing football but it's from work."),
            ("Nobody was around when it happened.", "My supervisor saw me fall."),
        ),
        "adjuster": ("ER not notified until after wkend.",
                     "EE stmt inconsistent w/ supervisor rpt.", "Onset possibly non-occupational."),
        "code": ("DISPUTED - NON OCC?", "STMT CONFLICT"),
    },
}

# Sentences that point at a neighbouring claim type, so the type is sometimes ambiguous.
CONFUSERS: dict[str, dict[str, tuple[str, ...]]] = {
    "collision": {"claimant": ("The windshield is cracked from the impact.",
                               "It happened in the parking lot at work."),
                  "adjuster": ("W/s cracked.", "Occurred on insd's work premises.")},
    "vehicle_theft": {"claimant": ("They broke into the house first and took the keys.",
                                   "They smashed the side window first."),
                      "adjuster": ("Keys taken in home break-in.", "Broken glass at scene.")},
    "glass_damage": {"claimant": ("The hail storm last night did it.",
                                  "I think someone bumped it in the parking lot."),
                     "adjuster": ("Hail event.", "Poss minor collision.")},
    "water_damage": {"claimant": ("This was during the big storm so maybe the wind did something "
                                  "to the roof.", "It started after the heavy rain on {weekday}."),
                     "adjuster": ("Clmt believes storm related.", "Occurred during heavy rain.")},
    "fire": {"claimant": ("The firemen's hoses left water everywhere in the {room}.",
                          "Someone may have broken in and started it, the police are looking "
                          "into it."),
             "adjuster": ("Water dmg from suppression.", "Poss arson, PD investigating.")},
    "storm": {"claimant": ("Water came through the {room} ceiling and soaked the carpet.",
                           "The basement flooded after the downpour."),
              "adjuster": ("Water intrusion in {room}.", "Basement flooded.")},
    "burglary": {"claimant": ("They also took the car keys and the car.",
                              "They smashed the {room} window to get in."),
                 "adjuster": ("Veh keys also taken.", "Point of entry: broken window.")},
    "slip_and_fall": {"claimant": ("I work there part time but wasn't on shift that day.",
                                   "A dog ran at me and that's why I fell."),
                      "adjuster": ("TP is part-time EE, off duty at TOL.", "Dog involved per TP.")},
    "dog_bite": {"claimant": ("The dog jumped up and knocked them over.",
                              "They fell backwards down the steps."),
                 "adjuster": ("TP fell when dog jumped.", "TP fell on steps.")},
    "workplace_injury": {"claimant": ("It's been sore for a while from doing the same thing every "
                                      "day.", "The floor was wet from the cleaners."),
                         "adjuster": ("Hx of gradual pain same area.", "Wet floor.")},
    "repetitive_strain": {"claimant": ("It got really bad when I lifted a heavy box last week.",
                                       "I also slipped at work a while back."),
                          "adjuster": ("Acute aggravation lifting box.", "Prior slip at work.")},
}

OPENINGS = ("Hi,", "Hello,", "To whom it may concern,", "Hi there.", "Reporting a claim.",
            "Good morning,", "I need to make a claim.")
# How many sentences of irrelevant detail a claimant adds, drawn uniformly from this list.
CHATTER = (0, 1, 1, 2, 2, 3, 4, 6, 8)
WHEN = ("This happened on {month_day} {time}.", "It was {time} on {month_day}.",
        "This was last {weekday}.", "It happened on {month_day}.")
# Detail that says nothing about the type or severity, by line of business (and for collisions).
IRRELEVANT: dict[str, tuple[str, ...]] = {
    "any": ("My dog was going crazy barking the whole time.",
            "I tried calling yesterday but got cut off twice.",
            "Sorry if this is long, it's my first claim.",
            "We'd just got back from visiting my sister in {city}.",
            "Please call my cell, the landline is not working.", "I'm at work until 5 most days.",
            "My husband is dealing with it too so you might hear from him.",
            "I have photos on my phone if you need them.", "The kids were at school thankfully.",
            "It was my birthday weekend of all times.",
            "I've been with you guys for years and never claimed.",
            "I was on the phone with my mum when it happened.",
            "Our cat hid under the bed for a day afterwards.",
            "We have a new baby so things are hectic.",
            "I work nights so mornings are best to reach me.",
            "Just want to get this sorted as soon as possible.", "I'm not sure what else you need.",
            "I was on hold for 40 minutes before, so I'm doing it online.",
            "My neighbour has been really helpful.", "I'm writing this on my phone, sorry.",
            "We were about to go on holiday.", "The dog was at the groomer's, thankfully.",
            "English is not my first language, sorry for mistakes.",
            "My son is helping me fill this in.", "I've attached what I could.",
            "It has been a very stressful week.", "I'll be away next week from {weekday}."),
    "auto": ("I had just filled up with gas.", "I had to get a ride home from a friend.",
             "The car is only six months old.", "I use the car for work every day.",
             "It's our only car.", "I just had it serviced last month."),
    "property": ("We only moved in last spring.", "My mother-in-law was staying with us.",
                 "We had just redone the floors.", "The dog was in the yard."),
    "liability": ("I was there to pick up a prescription.", "The manager took my details.",
                  "I was wearing my normal shoes.", "It was pretty busy at the time."),
    "collision": ("The other driver was very apologetic.", "The police came and took statements.",
                  "I was listening to the radio.", "My kids were in the back, they're fine.",
                  "I received a letter from the other driver's insurance already."),
    "workers_comp": ("I've worked there four years.", "My supervisor filled out a form.",
                     "We were short staffed that day.", "I was covering for a colleague."),
}
CLOSINGS: dict[str, tuple[str, ...]] = {
    "any": ("Please let me know what you need from me.", "Can someone call me back?", "Thanks.",
            "Thank you.", "What do I do next?", "Please advise."),
    "auto": ("I need a rental car asap.", "Do I need to get estimates?"),
    "property": ("We need somewhere to stay.", "Should I get a plumber or contractor out?"),
    "liability": ("Who pays my medical bills?",),
    "workers_comp": ("How do I get paid while I'm off?",),
}
ADMIN: dict[str, dict[str, tuple[str, ...]]] = {
    "adjuster": {
        "any": ("Photos rec'd.", "Photos received.", "Recorded stmt taken.", "Cov confirmed.",
                "LVM for clmt.", "Assigned to field adj.", "Est to follow.",
                "Spoke w/ clmt {dol}.", "Called clmt x2, no answer.", "Will f/u next week.",
                "Docs requested."),
        "auto": ("Police rpt #{num} pending.", "Rental auth'd.", "Tow to body shop.",
                 "Subro potential - OV at fault."),
        "property": ("Mitigation vendor assigned.", "Contractor est rec'd.", "Inspection set."),
        "liability": ("Incident rpt requested.", "TP rep by atty.", "Med recs requested."),
        "workers_comp": ("FROI rec'd.", "Awaiting med recs.", "ER contacted.", "RTW date unk."),
    },
    "code": {
        "any": ("PHOTOS REC", "REC STMT", "CALL BACK", "ASSIGNED FA", "PENDING DOCS"),
        "auto": ("TOW REQ", "RENTAL REQ", "POLICE RPT PENDING"),
        "property": ("MITIGATION DISPATCHED", "INSPECTION REQ"),
        "liability": ("TP REP BY ATTY", "INCIDENT RPT REQ"),
        "workers_comp": ("FROI REC", "MED AUTH REQ", "RTW UNK"),
    },
}
UNINFORMATIVE = ("see attached", "See attached.", "CALL CLMT", "call clmt", "pls see notes",
                 "Claim reported via portal, details to follow.", "FNOL - details TBD",
                 "refer to email", "ATTACHMENT", "clmt will call back", "as discussed on phone",
                 "TBD", "see docs", "N/A - see file", "see email {dol}", "CALL CLMT {dol}",
                 "Ref #{num}", "details to follow")
MISSPELLINGS = {
    "received": "recieved", "collision": "collison", "ceiling": "ceilng", "damage": "damge",
    "windshield": "windsheild", "basement": "basment", "accident": "accidnet",
    "hospital": "hosptial", "neighbour": "nieghbour", "definitely": "definately",
    "vehicle": "vehical", "garage": "garge", "because": "becuase", "their": "thier",
    "kitchen": "kitchin", "burst": "brust", "stolen": "stolne", "window": "widnow",
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

COLUMNS = (
    "claim_id", "description", "loss_date", "reported_date", "line_of_business", "policy_id",
    "policy_start_date", "initial_estimate", "currency", "claimant_age", "prior_claims",
    "channel", "region", "claim_type", "severity", "siu_referral",
)
# fmt: on

SHARED_EVENTS_BY_TYPE = {
    name: tuple(group for group in SHARED_EVENTS if name in group["types"]) for name in TYPE_NAMES
}
_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[A-Za-z]{4,}")


def generate_claims(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` synthetic claims with labels; the same ``(n, seed)`` always gives the same frame."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    profiles = [CLAIM_TYPES[name] for name in TYPE_NAMES]

    kind = rng.choice(len(profiles), size=n, p=[profile.share for profile in profiles])

    def per_type(attribute: str) -> np.ndarray:
        """Each claim's value of a ClaimTypeProfile attribute, by its true type."""
        return np.array([getattr(profile, attribute) for profile in profiles])[kind]

    damage = _categorical(rng, per_type("damage_p"))
    injury = _categorical(rng, per_type("injury_p"))
    region = np.where(
        kind == TYPE_NAMES.index("storm"),
        rng.choice(len(REGIONS), size=n, p=STORM_REGION_SHARES),
        rng.choice(len(REGIONS), size=n, p=REGION_SHARES),
    )

    # True amount: lognormal around the type median, pushed up by the cues and the region.
    cue = 0.9 * damage + 0.9 * injury
    amount_noise = rng.normal(0.0, 0.6, n)
    log_ratio = 0.6 * cue + amount_noise + np.array(REGION_COST)[region]
    amount_usd = per_type("median_usd") * np.exp(log_ratio)
    severity_score = 0.8 * cue + 0.8 * log_ratio + per_type("severity_shift")
    severity = np.searchsorted(SEVERITY_THRESHOLDS, severity_score + rng.normal(0.0, 0.3, n))

    # Dates: the reporting lag first, so that the report still falls inside the fixed window.
    late = rng.random(n) < per_type("late_rate")
    lag = np.where(
        late,
        rng.integers(LATE_REPORT_DAYS + 1, 181, n),
        np.minimum(rng.exponential(2.5, n).astype(np.int64), LATE_REPORT_DAYS),
    )
    span = int((LAST_DAY - FIRST_DAY).astype(np.int64))
    loss = FIRST_DAY + (rng.random(n) * (span - lag + 1)).astype(np.int64).astype("timedelta64[D]")
    reported = loss + lag.astype("timedelta64[D]")
    short = rng.random(n) < SHORT_TENURE_RATE
    tenure = np.where(
        short,
        rng.integers(2, SHORT_TENURE_DAYS + 1, n),
        np.minimum(SHORT_TENURE_DAYS + 1 + np.exp(rng.normal(6.3, 0.9, n)), 6000).astype(np.int64),
    )
    policy_start = loss - tenure.astype("timedelta64[D]")

    prior = rng.poisson(np.where(rng.random(n) < 0.06, 2.8, 0.35)).astype(np.int64)
    inconsistent = rng.random(n) < INCONSISTENT_RATE
    siu_logit = (
        SIU_INTERCEPT
        + SIU_WEIGHTS["short_tenure"] * short
        + SIU_WEIGHTS["late_report"] * late
        + SIU_WEIGHTS["inconsistent"] * inconsistent
        + SIU_WEIGHTS["high_amount"] * (amount_noise > HIGH_AMOUNT_LOG_EXCESS)
        + SIU_WEIGHTS["prior_claims"] * np.minimum(prior, 6)
        + SIU_WEIGHTS["prone_type"] * per_type("siu_prone")
    )
    siu = (rng.random(n) < 1.0 / (1.0 + np.exp(-siu_logit))).astype(np.int64)

    currency = rng.choice(len(CURRENCIES), size=n, p=CURRENCY_SHARES)
    estimate = amount_usd * np.exp(rng.normal(0.0, 0.3, n)) * np.array(USD_TO)[currency]
    estimate = np.where(rng.random(n) < ZERO_ESTIMATE_RATE, 0.0, np.round(estimate, 2))
    line = np.array([LINES.index(profile.line) for profile in profiles])[kind]
    low_age, high_age = (np.array([AGE_RANGE[name][end] for name in LINES])[line] for end in (0, 1))
    age = np.clip(np.rint(rng.normal(46, 16, n)), low_age, high_age).astype(np.int64)
    voice = rng.choice(len(VOICES), size=n, p=VOICE_SHARES)
    channel = _categorical(rng, np.array([CHANNEL_SHARES_BY_VOICE[v] for v in VOICES])[voice])
    policy_number = rng.integers(10_000_000, 100_000_000, n)

    # Label noise: each replacement is a different value, so the rates are the error rates.
    label_kind = _replace_some(rng, kind, len(TYPE_NAMES), TYPE_NOISE)
    label_severity = _replace_some(rng, severity, len(SEVERITIES), SEVERITY_NOISE)
    label_siu = _replace_some(rng, siu, 2, SIU_NOISE)

    uninformative = rng.random(n) < UNINFORMATIVE_RATE
    writer = _NarrativeWriter(random.Random(int(rng.integers(2**63))))
    loss_days = loss.astype(object)
    descriptions = np.array(
        [
            writer.narrative(
                TYPE_NAMES[kind[i]],
                VOICES[voice[i]],
                int(damage[i]),
                int(injury[i]),
                bool(inconsistent[i]),
                bool(uninformative[i]),
                loss_days[i],
            )
            for i in range(n)
        ],
        dtype=object,
    )

    # Claim numbers follow the order the claims were reported in, as a claims system issues them.
    order = np.lexsort((np.arange(n), loss, reported))
    line_names = np.array(LINES)[line[order]]
    return pd.DataFrame(
        {
            "claim_id": [f"CLM-{number:07d}" for number in range(1, n + 1)],
            "description": descriptions[order],
            "loss_date": np.datetime_as_string(loss[order]),
            "reported_date": np.datetime_as_string(reported[order]),
            "line_of_business": line_names,
            "policy_id": [
                f"{POLICY_PREFIX[name]}-{number}"
                for name, number in zip(line_names, policy_number[order], strict=True)
            ],
            "policy_start_date": np.datetime_as_string(policy_start[order]),
            "initial_estimate": estimate[order],
            "currency": np.array(CURRENCIES)[currency[order]],
            "claimant_age": age[order],
            "prior_claims": prior[order],
            "channel": np.array(CHANNELS)[channel[order]],
            "region": np.array(REGIONS)[region[order]],
            "claim_type": np.array(TYPE_NAMES)[label_kind[order]],
            "severity": np.array(SEVERITIES)[label_severity[order]],
            "siu_referral": label_siu[order],
        },
        columns=list(COLUMNS),
    )


def _categorical(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One draw per row, each from that row's probabilities."""
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(probabilities))[:, None] * cumulative[:, -1:]
    return np.minimum((draws >= cumulative).sum(axis=1), probabilities.shape[1] - 1)


def _replace_some(rng: np.random.Generator, values: np.ndarray, k: int, rate: float) -> np.ndarray:
    """Replace a ``rate`` share of values, each by a different one of the ``k`` values."""
    replaced = rng.random(len(values)) < rate
    shift = rng.integers(1, k, len(values))
    return np.where(replaced, (values + shift) % k, values)


class _NarrativeWriter:
    """Assembles one narrative per claim from the vocabulary tables."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.known: dict[str, str] = {}

    def narrative(
        self,
        claim_type: str,
        voice: str,
        damage: int,
        injury: int,
        inconsistent: bool,
        uninformative: bool,
        loss_day: date,
    ) -> str:
        rnd = self.rnd
        self.known = {
            "month_day": f"{MONTHS[loss_day.month - 1]} {_ordinal(loss_day.day)}",
            "weekday": WEEKDAYS[loss_day.weekday()],
            "dol": loss_day.strftime("%m/%d/%y"),
            "dol_code": loss_day.strftime("%m%d%y"),
            "party": rnd.choice(PARTY[CLAIM_TYPES[claim_type].story]),
            "body_part": rnd.choice(SLOTS["body_part"]),
        }
        # One body part per narrative: a broken bone is the sore one where that makes sense.
        part = self.known["body_part"]
        self.known["bone"] = part if part in SLOTS["bone"] else rnd.choice(SLOTS["bone"])
        if uninformative:
            return self.fill(rnd.choice(UNINFORMATIVE))
        build = {"claimant": self._claimant, "adjuster": self._adjuster, "code": self._code}
        text = build[voice](claim_type, damage, injury, inconsistent)
        if rnd.random() < TYPO_RATE:
            text = self._typos(text)
        return text[:1500]

    def fill(self, template: str) -> str:
        while "{" in template:
            template = _SLOT.sub(self._slot, template)
        return template

    def _slot(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name in self.known:
            return self.known[name]
        if name == "num":
            return str(self.rnd.randint(1000, 99999))
        return self.rnd.choice(SLOTS[name])

    def _pick(self, options: tuple[str, ...]) -> str:
        return self.fill(self.rnd.choice(options))

    def _event(self, claim_type: str, voice: str) -> str:
        """What happened: now and then told as for a neighbouring claim type."""
        shared = SHARED_EVENTS_BY_TYPE[claim_type]
        if shared and voice != "third" and self.rnd.random() < SHARED_EVENT_RATE:
            return self._pick(self.rnd.choice(shared)[voice])
        return self._pick(EVENTS[claim_type][voice])

    def _claimant(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        person = "third" if "third" in EVENTS[claim_type] and rnd.random() < 0.5 else "first"
        story = INCONSISTENCIES[profile.story]["claimant"]
        early, late = rnd.choice(story) if inconsistent else ("", "")
        irrelevant = IRRELEVANT["any"] + IRRELEVANT.get(claim_type, ())
        if person == "first":  # line-specific chatter is about the claimant's own experience
            irrelevant += IRRELEVANT[profile.line]
        chatter = [self.fill(line) for line in rnd.sample(irrelevant, rnd.choice(CHATTER))]
        parts = [
            rnd.choice(OPENINGS) if rnd.random() < 0.3 else "",
            rnd.choice(SLOTS["weather"]) + "." if rnd.random() < 0.2 else "",
            self._event(claim_type, "claimant" if person == "first" else "third"),
            self._pick(WHEN) if rnd.random() < 0.4 else "",
            self._pick(CONFUSERS[claim_type]["claimant"]) if rnd.random() < CONFUSER_RATE else "",
            early,
            chatter.pop() if chatter and rnd.random() < 0.4 else "",
        ]
        if profile.damage and rnd.random() < 0.8:
            parts.append(self._pick(DAMAGE[profile.damage]["claimant"][damage]))
        parts.append(self._injury_text(person, claim_type, injury))
        parts += chatter
        parts.append(late)
        closings = CLOSINGS["any"] + CLOSINGS[profile.line]
        parts.append(self._pick(closings) if rnd.random() < 0.5 else "")
        text = " ".join(_sentence_case(part) for part in parts if part)
        return text.lower() if rnd.random() < 0.04 else text

    def _adjuster(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        dated = rnd.random()
        parts = [
            self.fill("{dol} -") if dated < 0.2 else "",
            self._event(claim_type, "adjuster"),
            self.fill("DOL {dol}.") if 0.2 <= dated < 0.45 else "",
        ]
        if profile.damage and rnd.random() < 0.85:
            parts.append(self._pick(DAMAGE[profile.damage]["adjuster"][damage]))
        parts.append(self._injury_text("adjuster", claim_type, injury))
        if rnd.random() < CONFUSER_RATE:
            parts.append(self._pick(CONFUSERS[claim_type]["adjuster"]))
        if inconsistent:
            parts.append(rnd.choice(INCONSISTENCIES[profile.story]["adjuster"]))
        admin = ADMIN["adjuster"]["any"] + ADMIN["adjuster"][profile.line]
        parts += [self.fill(note) for note in rnd.sample(admin, rnd.randint(1, 3))]
        return " ".join(_sentence_case(part) for part in parts if part)

    def _code(self, claim_type: str, damage: int, injury: int, inconsistent: bool) -> str:
        rnd, profile = self.rnd, CLAIM_TYPES[claim_type]
        parts = [self._event(claim_type, "code")]
        if profile.damage and rnd.random() < 0.7:
            parts.append(rnd.choice(DAMAGE[profile.damage]["code"][damage]))
        parts.append(self._injury_text("code", claim_type, injury))
        if inconsistent:
            parts.append(rnd.choice(INCONSISTENCIES[profile.story]["code"]))
        admin = ADMIN["code"]["any"] + ADMIN["code"][profile.line]
        parts += rnd.sample(admin, rnd.randint(0, 2))
        if rnd.random() < 0.4:
            parts.append(self._pick(("DOL {dol_code}", "DOL {dol}", "REF {num}")))
        separator = rnd.choice((" - ", " - ", " / ", "; ", ", "))
        return separator.join(part for part in parts if part).upper()

    def _injury_text(self, writer: str, claim_type: str, injury: int) -> str:
        """The injury cue: often negated when there is none, sometimes vague or left out."""
        rnd = self.rnd
        if injury == 0:
            mention = 0.7 if claim_type == "collision" else 0.15
            return self._pick(INJURY[writer][0]) if rnd.random() < mention else ""
        roll = rnd.random()
        typical = MINOR_INJURY_BY_TYPE.get(claim_type, {}).get(writer)
        if injury == 1 and typical and roll < 0.5:
            return self._pick(typical)
        if roll < 0.85:
            return self._pick(INJURY[writer][injury])
        return self._pick(VAGUE_INJURY[writer]) if roll < 0.93 else ""

    def _typos(self, text: str) -> str:
        """Misspell half the usual suspects and ~5% of other words (letters swapped or lost)."""

        def corrupt(match: re.Match[str]) -> str:
            word = match.group(0)
            if word.lower() in MISSPELLINGS and self.rnd.random() < 0.5:
                wrong = MISSPELLINGS[word.lower()]
                return wrong.upper() if word.isupper() else word[0] + wrong[1:]
            if self.rnd.random() >= TYPO_WORD_RATE:
                return word
            i = self.rnd.randrange(1, len(word) - 1)
            if self.rnd.random() < 0.5:
                return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
            return word[:i] + word[i + 1 :]

        return _WORD.sub(corrupt, text)


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
