/*
 * synth.c - the built-in demo dataset: order messages written in varied styles, each paired with
 * the JSON object a model should extract from it. Deterministic from a seed; our own templates
 * and word lists (no third-party text).
 */
#include "data/data.h"

#include <stdio.h>
#include <string.h>

static const char *first[] = {"Anna", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace",
                               "Hiro", "Ines", "Jonas", "Keiko", "Liam", "Maya", "Noah", "Olga",
                               "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wen",
                               "Ximena", "Yusuf", "Zoe"};
static const char *last[] = {"Smith", "Garcia", "Tanaka", "Novak", "Okafor", "Muller", "Rossi",
                              "Silva", "Kim", "Dubois", "Larsen", "Kowalski", "Haddad", "Moreau",
                              "Ivanova", "Nakamura", "Fischer", "Costa", "Berg", "Ali"};
static const char *cities[] = {"Lisbon", "Osaka", "Denver", "Lyon", "Krakow", "Nairobi", "Quito",
                               "Tallinn", "Seoul", "Porto", "Munich", "Austin", "Cairo", "Perth",
                               "Oslo", "Hanoi", "Bogota", "Dublin", "Turin", "Leeds"};
static const char *items[] = {"desk lamps", "notebooks", "coffee mugs", "USB cables", "chairs",
                              "water bottles", "backpacks", "keyboards", "plant pots", "umbrellas",
                              "towels", "headphones", "candles", "tea tins", "bike lights"};

static int pick(lt_rng *r, int n) { return (int)lt_rng_below(r, (uint64_t)n); }

// Writes one message and its answer.
void lt_synth_order(lt_rng *r, char *msg, size_t nmsg, char *json, size_t njson) {
    char id[16], name[64];
    snprintf(id, sizeof id, "%c%c-%05d", 'A' + pick(r, 26), 'A' + pick(r, 26), pick(r, 100000));
    snprintf(name, sizeof name, "%s %s", first[pick(r, 26)], last[pick(r, 20)]);
    const char *city = cities[pick(r, 20)], *item = items[pick(r, 15)];
    int qty = 1 + pick(r, 48);
    int cents = 99 + pick(r, 9900);
    char price[32];
    snprintf(price, sizeof price, "%d.%02d", cents / 100, cents % 100);
    switch (pick(r, 5)) {
    case 0:
        snprintf(msg, nmsg, "Hi, this is %s. Please ship %d %s to %s, at %s each. Order ref %s.",
                 name, qty, item, city, price, id);
        break;
    case 1:
        snprintf(msg, nmsg, "Order %s: %d x %s @ $%s, deliver to %s (customer: %s)", id, qty, item,
                 price, city, name);
        break;
    case 2:
        snprintf(msg, nmsg, "%s from %s wants %d %s. Unit price %s. Reference number %s.", name,
                 city, qty, item, price, id);
        break;
    case 3:
        snprintf(msg, nmsg, "New order #%s placed by %s - quantity %d, item: %s, price per unit "
                 "%s, ship-to city %s.", id, name, qty, item, price, city);
        break;
    default:
        snprintf(msg, nmsg, "Could you send %d %s to our office in %s? Price was %s per piece. "
                 "Thanks, %s (order %s)", qty, item, city, price, name, id);
        break;
    }
    snprintf(json, njson, "{\"order_id\": \"%s\", \"customer\": \"%s\", \"quantity\": %d, "
             "\"unit_price\": %s, \"city\": \"%s\"}", id, name, qty, price, city);
}
